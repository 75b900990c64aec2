"""Management API (functions/api/app.py) on moto (server mode): every route, every error, and openapi.json.

Every rejected request is checked to leave DynamoDB and the queue exactly as they were.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gitmirror.errors import TransientError
from gitmirror.records import RunRecord
from gitmirror.values import RunStatus, Trigger, UpdateStatus, iso, utcnow
from gitmirror_dev.lambdas import http_event, invoke_http, load_function, parse_json
from tests.conftest import AwsEnv
from tests.support.routes import MANAGEMENT_ROUTES, WEBHOOK_ROUTES
from tests.support.service import all_items, store

ROOT = Path(__file__).resolve().parents[2]
CALLER = "arn:aws:iam::123456789012:user/mirror-admin"
CANARY = "canary-API-5e1d7b3f9a"
IMMUTABLE = ("url", "source_url", "provider", "id", "source_repo_id", "source_full_name", "auth_method")
ID_RULE = "ids are 1-64 characters of a-z, 0-9, '-' or '_'"


class Api:
    """A fresh API function module (a new execution environment: settings are read on first use)."""

    def __init__(self) -> None:
        self.module = load_function("api")

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        arn: str | None = CALLER,
    ) -> tuple[int, Any, dict[str, str]]:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json"} if data else {}
        sent.update(headers or {})
        status, out_headers, out = invoke_http(
            self.module, http_event(method, path, sent, data, iam_user_arn=arn)
        )
        return status, parse_json(out) if out else None, out_headers


def spec(mirror_id: str | None = "acme-app", **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": mirror_id,
        "source_url": "https://github.com/acme/app.git",
        "url": "https://gitlab.example.com/acme/app.git",
        "provider": "github",
        "source_repo_id": "63933911",
        "source_full_name": "acme/app",
        "target_secret": "gitmirror/acme/target",
        "webhook_secret": "gitmirror/acme/webhook",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if not (k == "id" and v is None)}


def snapshot(aws: AwsEnv) -> list[Any]:
    mirrors = sorted(all_items(aws.env["MIRRORS_TABLE"]), key=lambda i: str(i["id"]))
    runs = sorted(all_items(aws.env["RUNS_TABLE"]), key=lambda i: (str(i["mirror_id"]), str(i["run_id"])))
    return [mirrors, runs]


def rejected(
    api: Api,
    aws: AwsEnv,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    status: int | tuple[int, ...] = 400,
    says: str | None = None,
    check_state: bool = True,
) -> str:
    """Send a request that must fail; check the JSON error and that nothing was written or queued."""
    before = snapshot(aws) if check_state else None
    got, reply, out_headers = api.call(method, path, body, raw=raw, headers=headers)
    case = f"{method} {path} {body if raw is None else raw[:80]!r}"
    assert got in ((status,) if isinstance(status, int) else status), f"{case}: {got} {reply}"
    assert out_headers.get("Content-Type") == "application/json", case
    assert isinstance(reply, dict) and set(reply) == {"error"}, f"{case}: {reply}"
    assert isinstance(reply["error"], str) and reply["error"], case
    if says is not None:
        assert says in reply["error"], f"{case}: {reply['error']!r} does not say {says!r}"
    if check_state:
        assert snapshot(aws) == before, f"{case}: the tables changed"
        assert aws.queue_messages() == [], f"{case}: something was queued"
    return str(reply["error"])


def create(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    status, reply, _ = api.call("POST", "/mirrors", body)
    assert status == 201, reply
    assert isinstance(reply, dict)
    return reply


@pytest.fixture
def api(aws: AwsEnv) -> Api:
    for name in ("gitmirror/acme/target", "gitmirror/acme/webhook"):  # what spec() names: they exist
        aws.put_secret(name, json.dumps({"username": "u", "token": "t-0123456789"}))
    return Api()


# --- success paths ---------------------------------------------------------------------------------


def test_create_get_list_change_delete(aws: AwsEnv, api: Api) -> None:
    status, reply, headers = api.call("POST", "/mirrors", spec(keep_divergent_refs=True))
    assert status == 201, reply
    assert headers["Location"] == "/mirrors/acme-app"
    assert reply["id"] == "acme-app"
    assert reply["url"] == "https://gitlab.example.com/acme/app.git"
    assert reply["enabled"] is True and reply["keep_divergent_refs"] is True
    assert reply["update_status"] == "none" and reply["created_at"] and reply["updated_at"]
    assert reply["target_secret"] == "gitmirror/acme/target"  # secret names are fine, values never read
    assert "source_key" not in reply and "lease_owner" not in reply
    assert store().get("acme-app") is not None

    status, got, _ = api.call("GET", "/mirrors/acme-app")
    assert status == 200 and got == reply

    create(api, spec("acme-app-2", source_repo_id="1", source_full_name="acme/two"))
    status, listing, _ = api.call("GET", "/mirrors")
    assert status == 200
    assert [m["id"] for m in listing["mirrors"]] == ["acme-app", "acme-app-2"]
    assert listing["mirrors"][0] == reply

    changes = {
        "enabled": False,
        "branch_filters": ["main", "release/*"],
        "mirror_branch_regex": "^(main|release/.*)$",
        "keep_divergent_refs": False,
        "webhook_secret": "gitmirror/acme/webhook-2",
    }
    status, changed, _ = api.call("PUT", "/mirrors/acme-app", changes)
    assert status == 200, changed
    assert {k: changed[k] for k in changes} == changes
    assert changed["url"] == reply["url"] and changed["created_at"] == reply["created_at"]
    item = store().raw("acme-app")
    assert item is not None and item["branch_filters"] == ["main", "release/*"] and item["enabled"] is False
    assert item["source_key"] == "github#id#63933911"  # internal fields untouched

    # null clears an optional field
    status, cleared, _ = api.call("PUT", "/mirrors/acme-app", {"mirror_branch_regex": None})
    assert status == 200 and cleared["mirror_branch_regex"] is None

    status, body, headers = api.call("DELETE", "/mirrors/acme-app")
    assert status == 204 and body is None
    assert store().get("acme-app") is None
    status, body, _ = api.call("GET", "/mirrors/acme-app")
    assert status == 404 and body == {"error": "no mirror with id 'acme-app'"}
    rejected(api, aws, "DELETE", "/mirrors/acme-app", status=404, says="no mirror with id 'acme-app'")
    assert [m["id"] for m in api.call("GET", "/mirrors")[1]["mirrors"]] == ["acme-app-2"]


def test_create_without_id_derives_one(aws: AwsEnv, api: Api) -> None:
    reply = create(api, spec(None, source_full_name="Acme/My.App"))
    assert re.fullmatch(r"acme-my-app-[0-9a-f]{6}", reply["id"]), reply["id"]
    assert api.call("GET", f"/mirrors/{reply['id']}")[0] == 200


def test_list_is_empty_without_mirrors(aws: AwsEnv, api: Api) -> None:
    assert api.call("GET", "/mirrors")[:2] == (200, {"mirrors": []})


def test_duplicate_id_is_409_and_keeps_the_original(aws: AwsEnv, api: Api) -> None:
    original = create(api, spec())
    rejected(
        api,
        aws,
        "POST",
        "/mirrors",
        spec(url="https://gitlab.example.com/other/thing.git"),
        status=409,
        says="a mirror with id 'acme-app' already exists",
    )
    assert api.call("GET", "/mirrors/acme-app")[1] == original


# --- POST /mirrors validation -------------------------------------------------------------------------

CREATE_ERRORS: list[tuple[str, Any, str]] = [
    ("unknown field", spec(foo=1), "unknown field 'foo'"),
    ("status field", spec(update_status="finished"), "unknown field 'update_status'"),
    ("internal field", spec(source_key="github#id#1"), "unknown field 'source_key'"),
    ("unsupported field", spec(only_protected_branches=True), "unknown field 'only_protected_branches'"),
    ("bad id", spec("Acme_App"), "id must be 1-64 characters"),
    ("traversal id", spec("../etc"), "id must be 1-64 characters"),
    ("long id", spec("a" * 65), "id must be 1-64 characters"),
    ("newline id", spec("nl\n"), "id must be 1-64 characters"),
    ("newline secret", spec(target_secret="gitmirror/acme/target\n"), "secret names may use"),
    ("no provider", {k: v for k, v in spec().items() if k != "provider"}, "provider: Field required"),
    ("no url", {k: v for k, v in spec().items() if k != "url"}, "url: Field required"),
    ("bad provider", spec(provider="bitbucket"), "provider: Input should be"),
    ("ssh url", spec(url="git@github.com:acme/app.git"), "only http(s):// URLs"),
    ("ssh scheme", spec(url="ssh://github.com/acme/app.git"), "only http(s):// URLs"),
    ("ftp", spec(url="ftp://example.com/app.git"), "unsupported URL scheme"),
    ("file url", spec(url="file:///etc/passwd"), "local paths are not allowed"),
    ("local path", spec(source_url="/var/repos/app.git"), "local paths are not allowed"),
    ("metadata address", spec(url="https://169.254.169.254/latest/meta-data"), "link-local"),
    ("private address", spec(url="https://10.1.2.3/acme/app.git"), "private address"),
    # the host as the HTTP client parses it: percent-escapes, trailing dots and numeric forms decoded
    ("escaped metadata", spec(url="https://%31%36%39.254.169.254/latest"), "link-local"),
    ("escaped private", spec(url="https://%31%30.1.2.3/a.git"), "private address"),
    ("dotted metadata", spec(url="https://169.254.169.254./latest"), "link-local"),
    ("dotted private", spec(source_url="https://10.1.2.3./a.git"), "private address"),
    ("decimal address", spec(url="https://2130706433/a.git"), "non-standard form of the address 127.0.0.1"),
    ("hex address", spec(url="https://0xa9.254.169.254/a.git"), "non-standard form of the address 169.254"),
    ("octal address", spec(url="https://0177.0.0.1/a.git"), "non-standard form of the address 127.0.0.1"),
    ("short address", spec(url="https://127.1/a.git"), "non-standard form of the address 127.0.0.1"),
    ("mapped address", spec(url="https://[::ffff:169.254.169.254]/a.git"), "link-local"),
    ("zone id", spec(url="https://[fe80::1%25eth0]/a.git"), "IPv6 zone"),
    ("odd host", spec(url="https://git_lab.example.com/a.git"), "plain host name"),
    ("unicode host", spec(url="https://gitlab.ex\u2603ample.com/a.git"), "not a valid host name"),
    ("query in url", spec(url="https://gitlab.example.com/a.git?private_token=x"), "query or fragment"),
    ("empty url", spec(url=""), "empty repository URL"),
    ("url with spaces", spec(url="https://gitlab.example.com/a b.git"), "whitespace"),
    ("oversize url", spec(url="https://gitlab.example.com/" + "a" * 3000), "at most 2048 characters"),
    ("too many filters", spec(branch_filters=["main"] * 101), "branch_filters"),
    ("empty filter", spec(branch_filters=[""]), "invalid branch filter"),
    ("bad regex", spec(mirror_branch_regex="(unclosed"), "mirror_branch_regex: invalid branch regex"),
    (
        "backreference",
        spec(mirror_branch_regex=r"(a)\1"),
        "mirror_branch_regex: invalid branch regex (it must be RE2",
    ),
    (
        "look-ahead",
        spec(mirror_branch_regex="(?=main)main"),
        "mirror_branch_regex: invalid branch regex (it must be RE2",
    ),
    ("secret prefix", spec(target_secret="prod/other-team/token"), "must start with the deployment's prefix"),
    ("secret name", spec(webhook_secret="gitmirror/../../x"), "secret names may use"),
    (
        "missing secret",
        spec(webhook_secret="gitmirror/acme/absent"),
        "secret 'gitmirror/acme/absent' does not exist",
    ),
    (
        "missing secrets",
        spec(target_secret="gitmirror/acme/none", source_secret="gitmirror/acme/none2"),
        "secrets 'gitmirror/acme/none2', 'gitmirror/acme/none' do not exist",
    ),
    ("no target secret", spec(target_secret=None), "auth_method password needs target_secret"),
    ("no repository identity", spec(source_repo_id=None, source_full_name=None), "source_full_name"),
    ("non-numeric repo id", spec(source_repo_id="abc"), "source_repo_id"),
    ("iam without codecommit", spec(auth_method="iam"), "git-codecommit"),
    ("bad auth method", spec(auth_method="ssh-key"), "auth_method"),
    ("bad enabled", spec(enabled="maybe"), "enabled"),
    ("wrong type", spec(branch_filters="main"), "branch_filters"),
]


def test_create_rejects_invalid_specs(aws: AwsEnv, api: Api) -> None:
    for name, body, says in CREATE_ERRORS:
        try:
            rejected(api, aws, "POST", "/mirrors", body, says=says)
        except AssertionError as exc:
            raise AssertionError(f"case {name!r}: {exc}") from None
    assert all_items(aws.env["MIRRORS_TABLE"]) == []


@pytest.mark.parametrize(
    "field, url",
    [
        ("url", "https://oauth2:{t}@gitlab.example.com/acme/app.git"),
        ("url", "https://{t}@gitlab.example.com/acme/app.git"),
        ("url", "https://:{t}@gitlab.example.com/acme/app.git"),
        ("source_url", "https://x-access-token:{t}@github.com/acme/app.git"),
    ],
)
def test_credentials_in_urls_are_refused_and_never_echoed(
    aws: AwsEnv, api: Api, capsys: pytest.CaptureFixture[str], field: str, url: str
) -> None:
    error = rejected(
        api,
        aws,
        "POST",
        "/mirrors",
        spec(**{field: url.format(t=CANARY)}),
        says="must not contain credentials",
    )
    assert error.startswith(field)
    assert CANARY not in error
    out = capsys.readouterr()
    assert CANARY not in out.out + out.err


def test_body_errors(aws: AwsEnv, api: Api) -> None:
    cases: list[tuple[str, bytes, dict[str, str] | None, int, str]] = [
        ("malformed json", b'{"id": "x",', None, 400, "request body is not valid JSON"),
        ("not json", b"id=acme", None, 400, "request body is not valid JSON"),
        ("deeply nested", b"[" * 30000 + b"]" * 30000, None, 400, "request body is not valid JSON"),
        ("nan", b'{"enabled": NaN}', None, 400, "enabled"),
        ("array", b"[1, 2]", None, 400, "the request body must be a JSON object"),
        ("string", b'"acme"', None, 400, "the request body must be a JSON object"),
        ("number", b"42", None, 400, "the request body must be a JSON object"),
        ("null", b"null", None, 400, "a JSON object body is required"),
        ("empty", b"", None, 400, "a JSON object body is required"),
        ("not utf-8", b'{"id": "\xff\xfe"}', None, 400, "not valid UTF-8"),
        ("form", b"id=acme", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "must be JSON"),
        ("text", b"{}", {"Content-Type": "text/plain"}, 415, "must be JSON"),
    ]
    oversized = json.dumps({**spec(), "mirror_branch_regex": "x" * (64 * 1024)}).encode()
    cases.append(("oversized", oversized, None, 413, "request body larger than 65536 bytes"))
    for name, raw, headers, status, says in cases:
        for method, path in (("POST", "/mirrors"), ("PUT", "/mirrors/acme-app")):
            try:
                rejected(api, aws, method, path, raw=raw, headers=headers, status=status, says=says)
            except AssertionError as exc:
                raise AssertionError(f"case {name!r} ({method}): {exc}") from None


def test_https_only_unless_insecure_http_is_allowed(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOW_INSECURE_HTTP", "false")
    monkeypatch.setenv("ALLOW_LOOPBACK", "false")
    strict = Api()  # settings are read once per execution environment: load after changing the env
    for body in (
        spec(url="http://gitlab.example.com/acme/app.git"),
        spec(source_url="http://github.com/acme/app.git"),
    ):
        rejected(strict, aws, "POST", "/mirrors", body, says="repository URLs must use https://")
    for url in (
        "https://127.0.0.1:8443/acme/app.git",
        "https://localhost/acme/app.git",
        "https://[::1]/a.git",
    ):
        rejected(strict, aws, "POST", "/mirrors", spec(url=url), says="which is not allowed")
    assert create(strict, spec())["url"].startswith("https://")

    monkeypatch.setenv("ALLOW_INSECURE_HTTP", "true")
    rejected(
        strict, aws, "POST", "/mirrors", spec("plain", url="http://gitlab.example.com/a.git"), says="https"
    )
    relaxed = Api()
    created = create(relaxed, spec("plain", url="http://gitlab.example.com/a.git"))
    assert created["url"] == "http://gitlab.example.com/a.git"


# --- PUT /mirrors/{id} -----------------------------------------------------------------------------


def test_change_refuses_immutable_and_unknown_fields(aws: AwsEnv, api: Api) -> None:
    original = create(api, spec())
    error = rejected(api, aws, "PUT", "/mirrors/acme-app", {"url": "https://gitlab.example.com/new.git"})
    assert error == ("url cannot be changed after creation (as in GitLab); delete and re-create the mirror")
    values = {"provider": "gitlab", "auth_method": "iam", "id": "other", "source_repo_id": "1"}
    for field in IMMUTABLE:
        body = {field: values.get(field, "https://github.com/x/y.git"), "enabled": False}
        rejected(
            api,
            aws,
            "PUT",
            "/mirrors/acme-app",
            body,
            says=f"{field} cannot be changed after creation (as in GitLab); delete and re-create the mirror",
        )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"colour": "blue"}, "unknown field 'colour'"),
        ({"source_key": "github#id#1"}, "unknown field 'source_key'"),
        ({"update_status": "finished"}, "unknown field 'update_status'"),
        ({"lease_owner": "me"}, "unknown field 'lease_owner'"),
        ({}, "nothing to change"),
        ({"enabled": None}, "enabled must be true or false"),
        ({"keep_divergent_refs": None}, "keep_divergent_refs must be true or false"),
        ({"enabled": "sometimes"}, "enabled"),
        ({"target_secret": "elsewhere/token"}, "must start with the deployment's prefix"),
        ({"source_secret": "gitmirror/a b"}, "secret names may use"),
        ({"branch_filters": ["x"] * 101}, "branch_filters"),
        ({"mirror_branch_regex": "[a-"}, "invalid branch regex"),
        ({"mirror_branch_regex": "a" * 3000}, "at most 2048 characters"),
    ]
    for body, says in cases:
        rejected(api, aws, "PUT", "/mirrors/acme-app", body, says=says)
    assert api.call("GET", "/mirrors/acme-app")[1] == original


def test_change_of_a_missing_mirror_is_404(aws: AwsEnv, api: Api) -> None:
    rejected(
        api, aws, "PUT", "/mirrors/ghost", {"enabled": False}, status=404, says="no mirror with id 'ghost'"
    )


# --- ids in the path -------------------------------------------------------------------------------

BAD_IDS = [
    "..",
    "..%2F..",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e",
    "%2e%2e%2f",
    "UPPER",
    "-leading-dash",
    "_leading",
    "a" * 65,
    "a.b",
    "a%00b",
    "a%20b",
    "a$b",
]


def test_bad_ids_in_the_path_never_touch_anything(aws: AwsEnv, api: Api) -> None:
    create(api, spec())
    before = snapshot(aws)
    requests: list[tuple[str, str, Any, int | tuple[int, ...], str | None]] = []
    for bad in BAD_IDS:
        requests += [
            ("GET", f"/mirrors/{bad}", None, 400, ID_RULE),
            ("PUT", f"/mirrors/{bad}", {"enabled": False}, 400, ID_RULE),
            ("DELETE", f"/mirrors/{bad}", None, 400, ID_RULE),
            ("POST", f"/mirrors/{bad}/sync", None, 400, ID_RULE),
            ("GET", f"/mirrors/{bad}/runs", None, 400, ID_RULE),
        ]
    for path in (
        "/mirrors/../mirrors",
        "/mirrors/acme-app/../acme-app",
        "/mirrors/acme-app/sync/..",
        "/mirrors//",
        "/mirrors/acme-app/",
        "/mirrors/acme-app/runs/../../x",
    ):
        requests += [
            (method, path, {"enabled": False}, (400, 404, 405), None)
            for method in ("GET", "PUT", "DELETE", "POST")
        ]
    with pytest.MonkeyPatch.context() as patch:
        # Any use of the store or the queue would now fail the request with 500: they must not be reached.
        untouchable = _BrokenStore(AssertionError("the store was used"))
        patch.setattr(api.module, "ports", lambda: (untouchable, untouchable))
        for method, path, body, status, says in requests:
            rejected(api, aws, method, path, body, status=status, says=says, check_state=False)
    assert snapshot(aws) == before
    assert aws.queue_messages() == []
    assert api.call("GET", "/mirrors/acme-app")[0] == 200


def test_unknown_routes_and_wrong_methods(aws: AwsEnv, api: Api) -> None:
    create(api, spec())
    for method, path in (
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/mirrors/acme-app/extra"),
        ("POST", "/webhooks/github"),
        ("GET", "/mirror"),
    ):
        assert rejected(api, aws, method, path, status=404) == "not found"
    for method, path in (
        ("DELETE", "/mirrors"),
        ("PUT", "/mirrors"),
        ("PATCH", "/mirrors"),
        ("POST", "/mirrors/acme-app"),
        ("PATCH", "/mirrors/acme-app"),
        ("GET", "/mirrors/acme-app/sync"),
        ("DELETE", "/mirrors/acme-app/sync"),
        ("POST", "/mirrors/acme-app/runs"),
        ("DELETE", "/mirrors/acme-app/runs"),
    ):
        rejected(api, aws, method, path, status=405, says="method not allowed")


# --- POST /mirrors/{id}/sync -------------------------------------------------------------------------


def test_sync_now_queues_one_job_then_is_a_no_op(aws: AwsEnv, api: Api) -> None:
    create(api, spec())
    status, reply, _ = api.call("POST", "/mirrors/acme-app/sync")
    assert status == 202, reply
    assert reply == {"mirror": "acme-app", "queued": True, "reason": "queued"}
    messages = aws.queue_messages()
    assert len(messages) == 1
    assert messages[0]["Attributes"]["MessageGroupId"] == "acme-app"  # type: ignore[index]
    job = json.loads(str(messages[0]["Body"]))
    assert job["mirror_id"] == "acme-app" and job["trigger"] == Trigger.MANUAL.value
    assert job["delivery_id"] is None
    mirror = store().get("acme-app")
    assert mirror is not None and mirror.update_status == UpdateStatus.SCHEDULED

    before = snapshot(aws)
    status, reply, _ = api.call("POST", "/mirrors/acme-app/sync")
    assert status == 200
    assert reply == {"mirror": "acme-app", "queued": False, "reason": "a run is already scheduled"}
    assert len(aws.queue_messages()) == 1
    assert snapshot(aws) == before


def test_sync_now_while_a_run_is_started(aws: AwsEnv, api: Api) -> None:
    create(api, spec())
    assert store().acquire_lease("acme-app", "run-1", 600)
    before = snapshot(aws)
    status, reply, _ = api.call("POST", "/mirrors/acme-app/sync")
    assert (status, reply) == (
        200,
        {"mirror": "acme-app", "queued": False, "reason": "a run is already started"},
    )
    assert aws.queue_messages() == [] and snapshot(aws) == before


def test_sync_now_of_a_disabled_or_missing_mirror(aws: AwsEnv, api: Api) -> None:
    create(api, spec(enabled=False))
    rejected(api, aws, "POST", "/mirrors/acme-app/sync", says="the mirror is disabled; enable it first")
    rejected(api, aws, "POST", "/mirrors/ghost/sync", status=404, says="no mirror with id 'ghost'")
    assert api.call("PUT", "/mirrors/acme-app", {"enabled": True})[0] == 200
    assert api.call("POST", "/mirrors/acme-app/sync")[0] == 202
    assert len(aws.queue_messages()) == 1


# --- GET /mirrors/{id}/runs --------------------------------------------------------------------------


def _run(mirror_id: str, minutes_ago: int) -> RunRecord:
    started = utcnow() - dt.timedelta(minutes=minutes_ago)
    return RunRecord(
        mirror_id=mirror_id,
        run_id=f"{iso(started)}-{minutes_ago:08x}",
        trigger=Trigger.WEBHOOK,
        delivery_id=f"d-{minutes_ago}",
        started_at=iso(started),
        finished_at=iso(started + dt.timedelta(seconds=3)),
        update_status=UpdateStatus.FINISHED,
        result=RunStatus.SUCCESS,
        bytes_sent=100 + minutes_ago,
        duration_ms=3000,
        transfer="full",
    )


def test_runs_newest_first_with_limit(aws: AwsEnv, api: Api) -> None:
    create(api, spec())
    create(api, spec("other", source_repo_id="7", source_full_name="acme/other"))
    runs = [_run("acme-app", m) for m in range(25)]
    for run in runs:
        store().put_run(run)
    other_run = _run("other", 99)
    store().put_run(other_run)

    status, reply, _ = api.call("GET", "/mirrors/acme-app/runs")
    assert status == 200
    assert reply["runs"] == [r.model_dump(mode="json") for r in runs[:20]]  # runs[0] is the newest
    status, reply, _ = api.call("GET", "/mirrors/acme-app/runs?limit=3")
    assert status == 200 and [r["run_id"] for r in reply["runs"]] == [r.run_id for r in runs[:3]]
    status, reply, _ = api.call("GET", "/mirrors/acme-app/runs?limit=100")
    assert status == 200 and len(reply["runs"]) == 25
    assert api.call("GET", "/mirrors/other/runs")[1]["runs"] == [other_run.model_dump(mode="json")]

    for bad in ("0", "101", "-1", "abc", "2.5", ""):
        rejected(api, aws, "GET", f"/mirrors/acme-app/runs?limit={bad}", says="query parameter limit")
    rejected(api, aws, "GET", "/mirrors/ghost/runs", status=404, says="no mirror with id 'ghost'")


def test_runs_of_a_mirror_without_history(aws: AwsEnv, api: Api) -> None:
    create(api, spec())
    assert api.call("GET", "/mirrors/acme-app/runs")[:2] == (200, {"runs": []})


# --- failures of the dependencies, logging, secrets ----------------------------------------------------


class _BrokenStore:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise self.exc

        return fail


def test_dependency_failures_are_503_and_bugs_500(
    aws: AwsEnv, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    throttled = _BrokenStore(TransientError("DynamoDB is throttling or unavailable: ThrottlingException"))
    monkeypatch.setattr(api.module, "ports", lambda: (throttled, throttled))
    for method, path, body in (("GET", "/mirrors", None), ("POST", "/mirrors", spec())):
        status, reply, _ = api.call(method, path, body)
        assert (status, reply) == (503, {"error": "temporarily unable to handle the request; retry later"})
    broken = _BrokenStore(RuntimeError(f"boom {CANARY}"))
    monkeypatch.setattr(api.module, "ports", lambda: (broken, broken))
    status, reply, _ = api.call("GET", "/mirrors/acme-app")
    assert (status, reply) == (500, {"error": "internal error"})


@pytest.fixture
def api_logs(api: Api) -> Iterator[list[dict[str, Any]]]:
    """The API's Powertools log records (JSON), captured through the logger's own formatter."""
    records: list[dict[str, Any]] = []
    logger = api.module.logger

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(json.loads(self.format(record)))

    handler = Capture()
    handler.setFormatter(logger.registered_formatter)
    underlying = logging.getLogger(logger.service)
    level = underlying.level
    underlying.addHandler(handler)
    underlying.setLevel(logging.INFO)
    try:
        yield records
    finally:
        underlying.removeHandler(handler)
        underlying.setLevel(level)


def test_logs_name_the_caller_and_no_secret_value_ever_leaves(
    aws: AwsEnv, api: Api, api_logs: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("gitmirror/acme/target", "gitmirror/acme/webhook"):
        aws.put_secret(name, json.dumps({"username": "u", "token": CANARY}))
    replies = [
        api.call("POST", "/mirrors", spec()),
        api.call("GET", "/mirrors"),
        api.call("GET", "/mirrors/acme-app"),
        api.call("PUT", "/mirrors/acme-app", {"keep_divergent_refs": True}),
        api.call("POST", "/mirrors/acme-app/sync"),
        api.call("GET", "/mirrors/acme-app/runs"),
        api.call("POST", "/mirrors", spec("leaky", url=f"https://u:{CANARY}@gitlab.example.com/a.git")),
    ]
    assert [r[0] for r in replies] == [201, 200, 200, 200, 202, 200, 400]
    handled = [r for r in api_logs if r.get("message") == "api request handled"]
    assert len(handled) == len(replies)
    assert all(r["caller"] == CALLER for r in handled)
    assert [r["status"] for r in handled] == [201, 200, 200, 200, 202, 200, 400]
    assert handled[0]["method"] == "POST" and handled[0]["path"] == "/mirrors"
    assert any(r.get("message") == "mirror created" and r.get("mirror_id") == "acme-app" for r in api_logs)

    # a request without an IAM caller (direct invocation) logs no stale caller from the previous one
    api.call("GET", "/mirrors", arn=None)
    assert "caller" not in api_logs[-1]

    out = capsys.readouterr()
    everything = json.dumps([r[1] for r in replies]) + json.dumps(api_logs) + out.out + out.err
    assert CANARY not in everything
    assert CANARY not in json.dumps(snapshot(aws), default=str)


# --- OpenAPI -----------------------------------------------------------------------------------------


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "gen_openapi.py"
    spec_ = importlib.util.spec_from_file_location("gen_openapi_under_test", path)
    assert spec_ is not None and spec_.loader is not None
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    return module


def test_committed_openapi_json_is_current(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
    assert committed == _generator().render(), (
        "openapi.json is stale: run .venv/bin/python scripts/gen_openapi.py"
    )


def test_openapi_lists_every_route() -> None:
    doc = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    assert doc["openapi"].startswith("3.")
    routes = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert routes == MANAGEMENT_ROUTES | WEBHOOK_ROUTES
    assert "422" not in json.dumps(doc["paths"])
    assert doc["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    for method, path in MANAGEMENT_ROUTES:
        operation = doc["paths"][path][method.lower()]
        assert operation["security"] == [{"sigv4": []}], (method, path)
        assert "400" in operation["responses"] or path == "/mirrors", (method, path)
        if "{id}" in path:
            (param,) = [p for p in operation["parameters"] if p["in"] == "path"]
            assert param["schema"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,63}$"
    for method, path in WEBHOOK_ROUTES:
        operation = doc["paths"][path][method.lower()]
        assert operation["security"] == []
        assert {"202", "200", "400", "401", "404", "405", "413"} <= set(operation["responses"])
    ref = "#/components/schemas/"
    assert doc["paths"]["/mirrors"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": ref + "MirrorSpec"
    }
    assert doc["paths"]["/mirrors/{id}"]["put"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": ref + "MirrorSettings"
    }
    assert set(doc["paths"]["/mirrors"]["post"]["responses"]) == {"201", "400", "409", "413", "415", "503"}
    assert set(doc["paths"]["/mirrors/{id}/sync"]["post"]["responses"]) == {"202", "200", "400", "404", "503"}
    mirror = doc["components"]["schemas"]["MirrorView"]
    assert "source_key" not in mirror["properties"] and "url" in mirror["properties"]


def test_max_push_bytes_is_set_changed_cleared_and_validated(aws: AwsEnv, api: Api) -> None:
    reply = create(api, spec(max_push_bytes="15M"))
    assert reply["max_push_bytes"] == 15 * 1024**2
    status, changed, _ = api.call("PUT", "/mirrors/acme-app", {"max_push_bytes": 1_000_000})
    assert status == 200 and changed["max_push_bytes"] == 1_000_000
    for bad in ("12Q", 0, -1, True, "1.5G"):
        rejected(api, aws, "PUT", "/mirrors/acme-app", {"max_push_bytes": bad}, says="max_push_bytes")
    status, cleared, _ = api.call("PUT", "/mirrors/acme-app", {"max_push_bytes": None})
    assert status == 200 and cleared["max_push_bytes"] is None
    item = store().raw("acme-app")
    assert item is not None and "max_push_bytes" not in item
    rejected(api, aws, "POST", "/mirrors", spec("acme-app-2", max_push_bytes="0"), says="max_push_bytes")
