"""Contract tests for the SAM template (template.yaml) and samconfig.toml.

The template is parsed with a small CloudFormation-aware YAML loader (cfn-lint lives in the separate
.venv-sam used by scripts/check_sam.sh, not in the dev venv). The short-form intrinsic tags are turned
into their long JSON form: ``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` -> ``{"Fn::GetAtt": ["A", "B"]}``,
``!Sub s`` -> ``{"Fn::Sub": "s"}`` and so on.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.routes import MANAGEMENT_ROUTES, WEBHOOK_ROUTES

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
SAMCONFIG_PATH = ROOT / "samconfig.toml"

FUNCTIONS = {
    "WebhookFunction": "webhook",
    "ApiFunction": "api",
    "WorkerFunction": "worker",
    "SchedulerFunction": "scheduler",
}


SECRETS_ARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsPrefix}*"

DEFAULT_BUS_ARN = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"

# The only IAM resources with a wildcard, each unavoidable: the GSIs of the mirrors table, and the
# secrets under the configured prefix (Secrets Manager appends a random suffix to every secret ARN).
ALLOWED_WILDCARD_RESOURCES = {
    "${MirrorsTable.Arn}/index/*",
    SECRETS_ARN,
}

# Exact inline permissions of every function: resource -> actions. Resources are rendered by _res():
# "X.Arn" for !GetAtt X.Arn, "Ref:X" for !Ref X, the string itself for !Sub.
EXPECTED_PERMISSIONS: dict[str, dict[str, set[str]]] = {
    "WebhookFunction": {
        "MirrorsTable.Arn": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
        "${MirrorsTable.Arn}/index/*": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
        "IdempotencyTable.Arn": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        },
        "SyncQueue.Arn": {"sqs:SendMessage"},
        SECRETS_ARN: {"secretsmanager:GetSecretValue"},
    },
    "ApiFunction": {
        "MirrorsTable.Arn": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
            "dynamodb:Scan",
        },
        "${MirrorsTable.Arn}/index/*": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
            "dynamodb:Scan",
        },
        "RunsTable.Arn": {"dynamodb:Query"},
        "SyncQueue.Arn": {"sqs:SendMessage"},
        SECRETS_ARN: {"secretsmanager:DescribeSecret"},
    },
    "WorkerFunction": {
        "MirrorsTable.Arn": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
        "${MirrorsTable.Arn}/index/*": {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"},
        "RunsTable.Arn": {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"},
        SECRETS_ARN: {"secretsmanager:GetSecretValue"},
        DEFAULT_BUS_ARN: {"events:PutEvents"},
        "Ref:CodeCommitRepositoryArns": {"codecommit:GitPull", "codecommit:GitPush"},
    },
    "SchedulerFunction": {
        "MirrorsTable.Arn": {"dynamodb:Scan", "dynamodb:UpdateItem"},
        "SyncQueue.Arn": {"sqs:SendMessage"},
    },
}

EXPECTED_ENV = {
    "MIRRORS_TABLE": {"Ref": "MirrorsTable"},
    "RUNS_TABLE": {"Ref": "RunsTable"},
    "IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"},
    "QUEUE_URL": {"Ref": "SyncQueue"},
    "SECRETS_PREFIX": {"Ref": "SecretsPrefix"},
    "ALLOW_INSECURE_HTTP": "false",
    "MAX_BODY_BYTES": "26214400",
    "RUN_TTL_DAYS": {"Ref": "RunTtlDays"},
    "POWERTOOLS_SERVICE_NAME": "gitmirror",
    "POWERTOOLS_LOG_LEVEL": {"Ref": "LogLevel"},
    "POWERTOOLS_METRICS_NAMESPACE": "gitmirror",
}

EXPECTED_OUTPUTS = {
    "GitHubWebhookUrl",
    "GitLabWebhookUrl",
    "GiteaWebhookUrl",
    "ManagementApiUrl",
    "MirrorsTableName",
    "RunsTableName",
    "SyncQueueUrl",
    "DeadLetterQueueUrl",
}

PSEUDO_PARAMETERS = {
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
}


# --------------------------------------------------------------------------------------------------
# Loader and helpers
# --------------------------------------------------------------------------------------------------
class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic function tags."""


def _construct_intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        doc = yaml.load(fh, Loader=CfnLoader)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


def _props(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    assert logical_id in resources, f"missing resource {logical_id}"
    return resources[logical_id].get("Properties", {})


def _function_prop(template: dict[str, Any], logical_id: str, key: str) -> Any:
    """A function property, falling back to Globals.Function like SAM does."""
    props = template["Resources"][logical_id]["Properties"]
    if key in props:
        return props[key]
    return template.get("Globals", {}).get("Function", {}).get(key)


def _events(resources: dict[str, Any], logical_id: str, event_type: str) -> dict[str, Any]:
    events = _props(resources, logical_id).get("Events", {})
    return {name: ev["Properties"] for name, ev in events.items() if ev["Type"] == event_type}


def _routes(resources: dict[str, Any], logical_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["Method"].upper(), p["Path"]): p for p in _events(resources, logical_id, "HttpApi").values()}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _flatten_if(value: Any) -> Iterator[Any]:
    """Both branches of Fn::If (dropping AWS::NoValue), or the value itself."""
    if isinstance(value, dict) and "Fn::If" in value:
        _, when_true, when_false = value["Fn::If"]
        for branch in (when_true, when_false):
            yield from _flatten_if(branch)
    elif value != {"Ref": "AWS::NoValue"}:
        yield value


def _res(expr: Any) -> str:
    if isinstance(expr, str):
        return expr
    if isinstance(expr, dict) and "Fn::GetAtt" in expr:
        return ".".join(expr["Fn::GetAtt"])
    if isinstance(expr, dict) and "Ref" in expr:
        return f"Ref:{expr['Ref']}"
    if isinstance(expr, dict) and "Fn::Sub" in expr and isinstance(expr["Fn::Sub"], str):
        return expr["Fn::Sub"]
    raise AssertionError(f"unexpected IAM resource expression {expr!r}")


def _statements(resources: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in _as_list(_props(resources, logical_id).get("Policies", [])):
        assert isinstance(policy, dict) and "Statement" in policy, (
            f"{logical_id}: only inline policy documents are allowed (no SAM policy templates or "
            f"managed policies, which grant more than needed): {policy!r}"
        )
        for statement in _as_list(policy["Statement"]):
            statements.extend(_flatten_if(statement))
    return statements


def _intrinsic_references(node: Any) -> Iterator[tuple[str, str]]:
    """(kind, name) of every Ref / GetAtt / Sub variable / Condition name used in node."""
    if isinstance(node, list):
        for item in node:
            yield from _intrinsic_references(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            yield ("Ref", value)
        elif key == "Fn::GetAtt":
            target = value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
            yield ("GetAtt", target)
        elif key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
            for var in re.findall(r"\$\{([^!}][^}]*)\}", text):
                name = var.split(".", 1)[0] if "." in var and not var.startswith("AWS::") else var
                if name not in variables:
                    yield ("Sub", name)
        elif key == "Fn::If":
            yield ("Condition", value[0])
        elif key == "Condition" and isinstance(value, str):
            yield ("Condition", value)
        yield from _intrinsic_references(value)


# --------------------------------------------------------------------------------------------------
# Document level
# --------------------------------------------------------------------------------------------------
def test_template_is_a_sam_template(template: dict[str, Any]) -> None:
    assert template["AWSTemplateFormatVersion"] == "2010-09-09"
    assert template["Transform"] == "AWS::Serverless-2016-10-31"


def test_every_reference_resolves(template: dict[str, Any]) -> None:
    resources = set(template["Resources"])
    parameters = set(template.get("Parameters", {}))
    conditions = set(template.get("Conditions", {}))
    names = resources | parameters | PSEUDO_PARAMETERS
    for kind, name in _intrinsic_references(
        {k: v for k, v in template.items() if k not in ("Parameters", "Conditions")}
    ):
        if kind == "Condition":
            assert name in conditions, f"unknown condition {name}"
        elif kind == "GetAtt":
            assert name in resources, f"!GetAtt of unknown resource {name}"
        else:
            assert name in names, f"{kind} of unknown name {name}"
    for kind, name in _intrinsic_references(template.get("Conditions", {})):
        target = conditions if kind == "Condition" else parameters | PSEUDO_PARAMETERS
        assert name in target, f"condition refers to unknown {kind} {name}"
    for logical_id, resource in template["Resources"].items():
        if "Condition" in resource:
            assert resource["Condition"] in conditions, f"{logical_id}: unknown condition"


def test_parameters_and_defaults(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["SecretsPrefix"]["Default"] == "gitmirror/"
    assert params["LogLevel"]["Default"] == "INFO"
    assert params["RunTtlDays"]["Default"] == 90
    assert params["WorkerMemorySize"]["Default"] == 1769
    assert params["WorkerTimeout"]["Default"] == 900
    assert params["WorkerTimeout"]["MaxValue"] == 900
    storage = params["WorkerEphemeralStorage"]
    assert (storage["Default"], storage["MinValue"], storage["MaxValue"]) == (4096, 512, 10240)
    assert params["SyncScheduleHours"]["Default"] == 8
    assert params["SyncScheduleHours"]["MinValue"] == 0
    assert params["CodeCommitRepositoryArns"]["Type"] == "CommaDelimitedList"
    assert params["CodeCommitRepositoryArns"]["Default"] == ""
    assert params["AlarmEmail"]["Default"] == ""
    for name in ("ApiThrottlingBurstLimit", "ApiThrottlingRateLimit"):
        assert params[name]["Type"] == "Number"


# --------------------------------------------------------------------------------------------------
# Layer and functions
# --------------------------------------------------------------------------------------------------
def test_layer(resources: dict[str, Any]) -> None:
    layer = resources["GitmirrorLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    props = layer["Properties"]
    assert props["ContentUri"] == "layers/"
    assert props["CompatibleRuntimes"] == ["python3.12"]
    assert props["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert (ROOT / "layers" / "gitmirror" / "__init__.py").is_file()
    requirements = (ROOT / "layers" / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^aws-lambda-powertools(\[[^\]]*\])?==", requirements, re.MULTILINE), (
        "Powertools must come with the layer's requirements"
    )


# What `sam build` copies from a python layer's ContentUri: the whole folder except these names, the
# python_pip workflow's CopySourceAction excludes (aws-lambda-builders PythonPipWorkflow.EXCLUDED_FILES).
# scripts/check_layer_build.py checks the real build of the same thing in CI.
SAM_PYTHON_EXCLUDES = (
    ".aws-sam", ".chalice", ".git", ".gitignore", "*.pyc", "__pycache__", "*.so", ".Python", "*.egg-info",
    "*.egg", "pip-log.txt", "pip-delete-this-directory.txt", "htmlcov", ".tox", ".nox", ".coverage", ".cache",
    ".pytest_cache", ".python-version", ".mypy_cache", ".dmypy.json", ".pyre", ".env", ".venv", "venv",
    "venv.bak", "env.bak", "ENV", "env", ".vscode", ".idea",
)  # fmt: skip
DEVELOPER_PACKAGES = {"gitmirror_cli", "gitmirror_dev", "tests", "moto", "pytest", "hypothesis", "yaml"}


def layer_build_sources(content_uri: Path) -> list[str]:
    """The files a layer build of `content_uri` ships besides the installed requirements, relative paths."""
    shipped = []
    for path in sorted(content_uri.rglob("*")):
        parts = path.relative_to(content_uri).parts
        if any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in SAM_PYTHON_EXCLUDES):
            continue
        if path.is_file():
            shipped.append("/".join(parts))
    return shipped


def _layer_content_uri(resources: dict[str, Any]) -> Path:
    return ROOT / resources["GitmirrorLayer"]["Properties"]["ContentUri"]


def test_layer_ships_only_the_runtime_package_and_its_requirements(resources: dict[str, Any]) -> None:
    content_uri = _layer_content_uri(resources)
    shipped = layer_build_sources(content_uri)
    assert "requirements.txt" in shipped and "gitmirror/__init__.py" in shipped
    others = [
        f
        for f in shipped
        if f != "requirements.txt" and not (f.startswith("gitmirror/") and f.endswith((".py", "/py.typed")))
    ]
    assert others == [], "the layer would ship more than the gitmirror package and requirements.txt"
    # (SAM drops __pycache__ and *.egg-info, not a *.dist-info or any other stray file: those fail above.)
    # Everything committed under the folder is shipped, i.e. sources only: nothing hides behind .gitignore.
    tracked = subprocess.run(
        ["git", "ls-files", "--", "."], cwd=content_uri, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked and set(tracked) <= set(shipped)


def _requirement_closure(requirements: Path) -> set[str]:
    """The distributions a layer build installs for requirements.txt (resolved in this environment)."""
    wanted = [
        Requirement(line) for line in requirements.read_text().splitlines() if line.split("#")[0].strip()
    ]
    seen: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(requirement.name) or []:
            dependency = Requirement(text)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                wanted.append(dependency)
    return seen


def test_runtime_package_imports_only_its_requirements(resources: dict[str, Any]) -> None:
    """Every import in the layer's package is the standard library, gitmirror itself or a requirement
    of the layer: the layer works without the CLI, the dev tooling or moto."""
    content_uri = _layer_content_uri(resources)
    allowed = _requirement_closure(content_uri / "requirements.txt")
    providers = metadata.packages_distributions()
    strays = set()
    for source in (content_uri / "gitmirror").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "gitmirror":
                    continue
                if (
                    top in DEVELOPER_PACKAGES
                    or not {canonicalize_name(d) for d in providers.get(top, [])} & allowed
                ):
                    strays.add(f"{source.relative_to(content_uri)}: {name}")
    assert strays == set()


def test_no_unexpected_functions(resources: dict[str, Any]) -> None:
    functions = {k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"}
    assert functions == set(FUNCTIONS)


@pytest.mark.parametrize(("logical_id", "directory"), sorted(FUNCTIONS.items()))
def test_function_contract(template: dict[str, Any], logical_id: str, directory: str) -> None:
    assert template["Resources"][logical_id]["Type"] == "AWS::Serverless::Function"
    assert _function_prop(template, logical_id, "CodeUri") == f"functions/{directory}/"
    assert _function_prop(template, logical_id, "Handler") == "app.lambda_handler"
    assert _function_prop(template, logical_id, "Runtime") == "python3.12"
    assert _function_prop(template, logical_id, "Architectures") == ["arm64"]
    assert {"Ref": "GitmirrorLayer"} in _function_prop(template, logical_id, "Layers")


@pytest.mark.parametrize(("logical_id", "directory"), sorted(FUNCTIONS.items()))
def test_function_handler_file_exists(logical_id: str, directory: str) -> None:
    handler = ROOT / "functions" / directory / "app.py"
    assert handler.is_file(), f"{logical_id}: handler file {handler.relative_to(ROOT)} is missing"
    assert re.search(r"^def lambda_handler\(", handler.read_text(encoding="utf-8"), re.MULTILINE) or (
        re.search(r"^lambda_handler\s*=", handler.read_text(encoding="utf-8"), re.MULTILINE)
    ), f"{handler.relative_to(ROOT)} defines no lambda_handler"


def test_environment(template: dict[str, Any]) -> None:
    for logical_id in FUNCTIONS:
        env = dict(
            template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        )
        props = template["Resources"][logical_id]["Properties"]
        env.update(props.get("Environment", {}).get("Variables", {}))
        for key, value in EXPECTED_ENV.items():
            assert env.get(key) == value, f"{logical_id}: {key}={env.get(key)!r}, expected {value!r}"


def test_webhook_function(resources: dict[str, Any]) -> None:
    props = _props(resources, "WebhookFunction")
    assert props["MemorySize"] == 256
    assert props["Timeout"] == 10
    routes = _routes(resources, "WebhookFunction")
    assert set(routes) == WEBHOOK_ROUTES
    for route, event in routes.items():
        assert event["ApiId"] == {"Ref": "HttpApi"}
        authorizer = event.get("Auth", {}).get("Authorizer", "NONE")
        assert authorizer == "NONE", f"{route}: webhook routes must not be authorized ({authorizer})"


def test_management_routes_use_iam(resources: dict[str, Any]) -> None:
    routes = _routes(resources, "ApiFunction")
    assert set(routes) == MANAGEMENT_ROUTES
    for route, event in routes.items():
        assert event["ApiId"] == {"Ref": "HttpApi"}
        assert event.get("Auth", {}).get("Authorizer") == "AWS_IAM", f"{route} must use AWS_IAM"


def test_only_the_expected_routes_exist(resources: dict[str, Any]) -> None:
    all_routes: list[tuple[str, str]] = []
    for logical_id in FUNCTIONS:
        all_routes.extend(_routes(resources, logical_id))
    assert sorted(all_routes) == sorted(WEBHOOK_ROUTES | MANAGEMENT_ROUTES)


def test_http_api(resources: dict[str, Any]) -> None:
    api = resources["HttpApi"]
    assert api["Type"] == "AWS::Serverless::HttpApi"
    auth = api["Properties"].get("Auth", {})
    assert auth.get("EnableIamAuthorizer") is True
    assert "DefaultAuthorizer" not in auth, "a default authorizer would apply to the webhook routes"
    throttling = api["Properties"]["DefaultRouteSettings"]
    assert throttling["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert throttling["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}


def test_worker_function(template: dict[str, Any], resources: dict[str, Any]) -> None:
    props = _props(resources, "WorkerFunction")
    assert props["MemorySize"] == {"Ref": "WorkerMemorySize"}
    assert props["Timeout"] == {"Ref": "WorkerTimeout"}
    assert props["EphemeralStorage"] == {"Size": {"Ref": "WorkerEphemeralStorage"}}
    sqs_events = list(_events(resources, "WorkerFunction", "SQS").values())
    assert len(sqs_events) == 1
    event = sqs_events[0]
    assert event["Queue"] == {"Fn::GetAtt": ["SyncQueue", "Arn"]}
    assert event["BatchSize"] == 1
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumBatchingWindowInSeconds" not in event, "not supported by FIFO queues"


def test_scheduler_function(template: dict[str, Any], resources: dict[str, Any]) -> None:
    events = _props(resources, "SchedulerFunction")["Events"]
    schedules = {k: v for k, v in events.items() if v["Type"] in ("Schedule", "ScheduleV2")}
    assert len(schedules) == 1
    props = next(iter(schedules.values()))["Properties"]
    expression = props.get("Schedule", props.get("ScheduleExpression"))
    assert "SyncScheduleHours" in repr(expression)
    # SyncScheduleHours=0 disables the schedule: State DISABLED through a condition on the parameter.
    state = props.get("State")
    assert isinstance(state, dict) and "Fn::If" in state, "schedule must be disabled when hours are 0"
    condition, when_true, when_false = state["Fn::If"]
    assert (when_true, when_false) == ("ENABLED", "DISABLED")
    assert template["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "SyncScheduleHours"}, "0"]}]
    }


# --------------------------------------------------------------------------------------------------
# Queues and tables
# --------------------------------------------------------------------------------------------------
def test_sync_queue(template: dict[str, Any], resources: dict[str, Any]) -> None:
    queue = _props(resources, "SyncQueue")
    assert queue["FifoQueue"] is True
    assert queue["ContentBasedDeduplication"] is False
    assert queue["SqsManagedSseEnabled"] is True
    worker_timeout = template["Parameters"]["WorkerTimeout"]
    visibility = queue["VisibilityTimeout"]
    assert isinstance(visibility, int)
    assert visibility >= 6 * worker_timeout["Default"]
    assert visibility >= 6 * worker_timeout["MaxValue"], "must hold for every allowed WorkerTimeout"
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["SyncDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == 3


def test_dead_letter_queue(resources: dict[str, Any]) -> None:
    dlq = _props(resources, "SyncDeadLetterQueue")
    assert dlq["FifoQueue"] is True
    assert dlq["SqsManagedSseEnabled"] is True


def _keys(props: dict[str, Any]) -> dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in props["KeySchema"]}


def _common_table_settings(props: dict[str, Any]) -> None:
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    declared = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    used = set(_keys(props).values())
    for index in props.get("GlobalSecondaryIndexes", []):
        used |= set(_keys(index).values())
    assert set(declared) == used, "AttributeDefinitions must list exactly the key attributes"


def test_mirrors_table(resources: dict[str, Any]) -> None:
    props = _props(resources, "MirrorsTable")
    _common_table_settings(props)
    assert _keys(props) == {"HASH": "id"}
    attrs = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attrs == {"id": "S", "source_key": "S"}
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "source-index"
    assert _keys(index) == {"HASH": "source_key"}
    assert index["Projection"]["ProjectionType"] == "ALL"


def test_runs_table(resources: dict[str, Any]) -> None:
    props = _props(resources, "RunsTable")
    _common_table_settings(props)
    assert _keys(props) == {"HASH": "mirror_id", "RANGE": "run_id"}
    attrs = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attrs == {"mirror_id": "S", "run_id": "S"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_idempotency_table(resources: dict[str, Any]) -> None:
    props = _props(resources, "IdempotencyTable")
    _common_table_settings(props)
    assert _keys(props) == {"HASH": "id"}
    attrs = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attrs == {"id": "S"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


# --------------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_function_permissions_are_exact(resources: dict[str, Any], logical_id: str) -> None:
    granted: dict[str, set[str]] = {}
    for statement in _statements(resources, logical_id):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        actions = set(_as_list(statement["Action"]))
        for resource in _as_list(statement["Resource"]):
            granted.setdefault(_res(resource), set()).update(actions)
    assert granted == EXPECTED_PERMISSIONS[logical_id]


def test_no_wildcards_in_iam(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    statements = [s for logical_id in FUNCTIONS for s in _statements(resources, logical_id)]
    for logical_id, resource in resources.items():
        if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            props = resource["Properties"]
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
            if "PolicyDocument" in props:
                documents.append(props["PolicyDocument"])
            for document in documents:
                for statement in _as_list(document["Statement"]):
                    statements.extend(_flatten_if(statement))
        # Managed policies would bypass the checks above.
        assert "ManagedPolicyArns" not in resource.get("Properties", {}), logical_id
    assert statements
    for statement in statements:
        for action in _as_list(statement["Action"]):
            assert "*" not in action, f"wildcard action {action}"
        for expr in _as_list(statement["Resource"]):
            resource = _res(expr)
            assert resource != "*", f"'*' resource in {statement}"
            if "*" in resource:
                assert resource in ALLOWED_WILDCARD_RESOURCES, f"unexpected wildcard resource {resource}"


def test_codecommit_permission_only_with_repositories(template: dict[str, Any]) -> None:
    policies = template["Resources"]["WorkerFunction"]["Properties"]["Policies"]
    conditional = [
        s for p in policies for s in _as_list(p["Statement"]) if isinstance(s, dict) and "Fn::If" in s
    ]
    assert len(conditional) == 1
    condition, statement, otherwise = conditional[0]["Fn::If"]
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert statement["Resource"] == {"Ref": "CodeCommitRepositoryArns"}
    assert template["Conditions"][condition] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "CodeCommitRepositoryArns"}]}, ""]}]
    }


# --------------------------------------------------------------------------------------------------
# Alarms, notifications, outputs
# --------------------------------------------------------------------------------------------------
def _alarm(resources: dict[str, Any], namespace: str, metric: str) -> dict[str, Any]:
    found = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("Namespace") == namespace
        and r["Properties"].get("MetricName") == metric
    ]
    assert len(found) == 1, f"expected one alarm on {namespace}/{metric}"
    return found[0]


def _assert_fires_above_zero(alarm: dict[str, Any]) -> None:
    assert alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["AlarmActions"] == {
        "Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]
    }


def test_alarms(resources: dict[str, Any]) -> None:
    dlq = _alarm(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dlq["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["SyncDeadLetterQueue", "QueueName"]}}
    ]
    _assert_fires_above_zero(dlq)
    errors = _alarm(resources, "AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "WorkerFunction"}}]
    _assert_fires_above_zero(errors)
    failed = _alarm(resources, "gitmirror", "MirrorsFailed")
    # Powertools Metrics adds the `service` dimension (POWERTOOLS_SERVICE_NAME) to every metric.
    assert failed["Dimensions"] == [{"Name": "service", "Value": "gitmirror"}]
    _assert_fires_above_zero(failed)
    secrets = _alarm(resources, "gitmirror", "WebhookSecretErrors")
    assert secrets["Dimensions"] == [{"Name": "service", "Value": "gitmirror"}]
    _assert_fires_above_zero(secrets)


def test_alarm_topic_only_with_email(template: dict[str, Any], resources: dict[str, Any]) -> None:
    assert template["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    assert resources["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    assert resources["AlarmTopic"]["Condition"] == "HasAlarmEmail"
    subscription = resources["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    # Every other reference to the conditional topic must be guarded by the same condition.
    for logical_id, resource in resources.items():
        if logical_id in ("AlarmTopic", "AlarmEmailSubscription"):
            continue
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            value = resource.get("Properties", {}).get(key)
            if value is not None and "AlarmTopic" in repr(value):
                assert value["Fn::If"][0] == "HasAlarmEmail", f"{logical_id}.{key}"
    for name, output in template["Outputs"].items():
        if "AlarmTopic" in repr(output["Value"]):
            assert output.get("Condition") == "HasAlarmEmail", name


def test_state_change_rule_mails_the_alarm_topic(template: dict[str, Any], resources: dict[str, Any]) -> None:
    rule = resources["MirrorStateChangeRule"]
    assert rule["Type"] == "AWS::Events::Rule" and rule["Condition"] == "HasAlarmEmail"
    props = rule["Properties"]
    assert props["EventBusName"] == "default" and props["State"] == "ENABLED"
    assert props["EventPattern"] == {
        "source": ["gitmirror"],
        "detail-type": ["Mirror Sync Failed", "Mirror Sync Recovered"],
    }
    assert [t["Arn"] for t in props["Targets"]] == [{"Ref": "AlarmTopic"}]
    policy = resources["AlarmTopicPolicy"]
    assert policy["Condition"] == "HasAlarmEmail"
    assert policy["Properties"]["Topics"] == [{"Ref": "AlarmTopic"}]
    statements = {s["Principal"]["Service"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    events = statements["events.amazonaws.com"]
    assert events["Action"] == "sns:Publish" and events["Resource"] == {"Ref": "AlarmTopic"}
    assert events["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["MirrorStateChangeRule", "Arn"]}}
    }


def test_dashboard_shows_the_operating_metrics(resources: dict[str, Any]) -> None:
    import json

    dashboard = resources["Dashboard"]
    assert dashboard["Type"] == "AWS::CloudWatch::Dashboard"
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    parsed = json.loads(re.sub(r"\$\{[^}]+\}", "X", body))  # valid JSON once the ${...} are filled in
    shown: set[tuple[str, str, str]] = set()
    for widget in parsed["widgets"]:
        props = widget["properties"]
        for metric in props["metrics"]:
            options = metric[-1] if isinstance(metric[-1], dict) else {}
            shown.add((metric[0], metric[1], str(options.get("stat", props.get("stat")))))
    assert {
        ("gitmirror", "MirrorRuns", "Sum"),
        ("gitmirror", "MirrorsFailed", "Sum"),
        ("gitmirror", "BytesSent", "Sum"),
        ("gitmirror", "BytesReceived", "Sum"),
        ("gitmirror", "RunDurationSeconds", "p50"),
        ("gitmirror", "RunDurationSeconds", "p99"),
        ("gitmirror", "MirrorLagSeconds", "p50"),
        ("gitmirror", "MirrorLagSeconds", "p99"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum"),
        ("AWS/Lambda", "Duration", "p99"),
    } <= shown
    assert "${SyncQueue.QueueName}" in body and "${SyncDeadLetterQueue.QueueName}" in body
    assert "${WebhookFunction}" in body
    # the worker's metrics carry Powertools' service dimension, as the alarms match them
    assert body.count('"service", "gitmirror"') >= 9


def test_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert set(outputs) >= EXPECTED_OUTPUTS
    for name, path in (
        ("GitHubWebhookUrl", "/webhooks/github"),
        ("GitLabWebhookUrl", "/webhooks/gitlab"),
        ("GiteaWebhookUrl", "/webhooks/gitea"),
    ):
        value = outputs[name]["Value"]["Fn::Sub"]
        assert value.startswith("https://${HttpApi}.execute-api.") and value.endswith(path)
    assert outputs["ManagementApiUrl"]["Value"]["Fn::Sub"].startswith("https://${HttpApi}.execute-api.")
    assert outputs["MirrorsTableName"]["Value"] == {"Ref": "MirrorsTable"}
    assert outputs["RunsTableName"]["Value"] == {"Ref": "RunsTable"}
    assert outputs["SyncQueueUrl"]["Value"] == {"Ref": "SyncQueue"}
    assert outputs["DeadLetterQueueUrl"]["Value"] == {"Ref": "SyncDeadLetterQueue"}
    assert "dashboards:name=${Dashboard}" in outputs["DashboardUrl"]["Value"]["Fn::Sub"]


# --------------------------------------------------------------------------------------------------
# samconfig.toml and check scripts
# --------------------------------------------------------------------------------------------------
def test_samconfig() -> None:
    config = tomllib.loads(SAMCONFIG_PATH.read_text(encoding="utf-8"))
    default = config["default"]
    assert default["global"]["parameters"]["stack_name"] == "gitmirror"
    deploy = default["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is True
    assert "region" not in deploy, "the region is left to the user"
    build = default["build"]["parameters"]
    assert build["cached"] is True
    assert build["parallel"] is True


@pytest.mark.parametrize(
    "script", ["check_sam.sh", "check_layer_wheels.sh", "sam_build.sh", "find_python.sh", "setup_venv.sh"]
)
def test_check_scripts_present(script: str) -> None:
    text = (ROOT / "scripts" / script).read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in text


def test_loader_understands_short_form_tags() -> None:
    doc = yaml.load(
        "a: !Ref X\nb: !GetAtt T.Arn\nc: !Sub 'x-${Y}'\nd: !If [C, 1, !Ref AWS::NoValue]\ne: !Join ['', [a]]\n",
        Loader=CfnLoader,
    )
    assert doc == {
        "a": {"Ref": "X"},
        "b": {"Fn::GetAtt": ["T", "Arn"]},
        "c": {"Fn::Sub": "x-${Y}"},
        "d": {"Fn::If": ["C", 1, {"Ref": "AWS::NoValue"}]},
        "e": {"Fn::Join": ["", ["a"]]},
    }
