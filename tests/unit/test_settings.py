"""Each process kind's settings: validated at cold start, named exactly as template.yaml declares them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitmirror.errors import ConfigurationError
from gitmirror.settings import (
    ApiSettings,
    CliSettings,
    SchedulerSettings,
    WebhookSettings,
    WorkerSettings,
    load,
    required_variable_names,
    variable_names,
)
from gitmirror_dev.moto_stack import local_environment

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "WebhookFunction": WebhookSettings,
    "ApiFunction": ApiSettings,
    "WorkerFunction": WorkerSettings,
    "SchedulerFunction": SchedulerSettings,
}
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/gitmirror-sync.fifo"


class _CfnLoader(yaml.SafeLoader):
    pass


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for kind in KINDS.values():
        for name in variable_names(kind):
            monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_missing_variable_fails_naming_it(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MIRRORS_TABLE", "gitmirror-mirrors")
    clean_env.setenv("RUNS_TABLE", "gitmirror-runs")
    with pytest.raises(ConfigurationError, match="QUEUE_URL: Field required"):
        load(SchedulerSettings)
    clean_env.setenv("QUEUE_URL", QUEUE)
    assert load(SchedulerSettings).queue_url == QUEUE
    with pytest.raises(ConfigurationError, match="IDEMPOTENCY_TABLE"):
        load(WebhookSettings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUEUE_URL", ""),
        ("QUEUE_URL", "not-a-queue"),
        ("MAX_BODY_BYTES", "lots"),
        ("MAX_BODY_BYTES", "0"),
        ("RUN_TTL_DAYS", "-1"),
        ("ALLOW_INSECURE_HTTP", "maybe"),
        ("MIRRORS_TABLE", "has spaces"),
    ],
)
def test_a_malformed_variable_fails_naming_it(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    for key, good in local_environment("http://127.0.0.1:9").items():
        clean_env.setenv(key, good)
    clean_env.setenv(name, value)
    kind = WebhookSettings if name == "MAX_BODY_BYTES" else WorkerSettings
    with pytest.raises(ConfigurationError, match=f"{name}: "):
        load(kind)


def test_the_network_policy_comes_from_the_flags(clean_env: pytest.MonkeyPatch) -> None:
    for key, value in local_environment("http://127.0.0.1:9").items():
        clean_env.setenv(key, value)
    policy = load(WorkerSettings).policy
    assert policy.allow_insecure_http and policy.allow_loopback and not policy.allow_private
    clean_env.delenv("ALLOW_LOOPBACK")
    assert not load(WorkerSettings).policy.allow_loopback


def test_the_cli_has_defaults_for_everything(clean_env: pytest.MonkeyPatch) -> None:
    settings = load(CliSettings)
    assert (settings.mirrors_table, settings.queue_url, settings.secrets_prefix) == (
        "gitmirror-mirrors",
        "",
        "gitmirror/",
    )
    assert required_variable_names(CliSettings) == []


def _declared(template: dict[str, Any], logical_id: str) -> set[str]:
    env = dict(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    props = template["Resources"][logical_id]["Properties"]
    env.update(props.get("Environment", {}).get("Variables", {}))
    return set(env)


def test_the_template_declares_every_variable_each_function_requires() -> None:
    template = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=_CfnLoader)
    for logical_id, kind in KINDS.items():
        missing = set(required_variable_names(kind)) - _declared(template, logical_id)
        assert not missing, f"{logical_id} lacks {sorted(missing)}"


def test_the_local_stack_environment_satisfies_every_function(clean_env: pytest.MonkeyPatch) -> None:
    env = local_environment("http://127.0.0.1:9")
    for kind in KINDS.values():
        assert set(required_variable_names(kind)) <= set(env), kind.__name__
    for key, value in env.items():
        clean_env.setenv(key, value)
    for kind in KINDS.values():
        load(kind)
