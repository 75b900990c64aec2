"""The receiver through `gitmirror serve` over real HTTP, with moto in server mode: every event and error."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gitmirror.values import UpdateStatus
from gitmirror_dev.lambdas import http_event, invoke_http, load_function
from gitmirror_dev.serve import serve_in_thread
from gitmirror_dev.signing import sign_github
from tests.conftest import AwsEnv
from tests.support.service import (
    WEBHOOK_SECRET,
    add_mirror,
    gitea_push,
    github_push,
    gitlab_push,
    payload,
    store,
)

SRC = "http://127.0.0.1:1/src.git"  # never contacted: the receiver does no git work
DST = "http://127.0.0.1:1/dst.git"


@pytest.fixture
def serve(aws: AwsEnv) -> Iterator[str]:
    server, url = serve_in_thread()
    yield url
    server.shutdown()
    server.server_close()


def post(url: str, headers: dict[str, str], body: bytes, method: str = "POST") -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body if method != "GET" else None, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def queued(aws: AwsEnv) -> list[dict[str, Any]]:
    return [
        json.loads(str(m["Body"])) | {"group": m["Attributes"]["MessageGroupId"]}
        for m in aws.queue_messages()
    ]  # type: ignore[index]


def test_github_push_json_and_redelivery(aws: AwsEnv, serve: str) -> None:
    mirror = add_mirror(aws, SRC, DST)
    headers, body = github_push()
    status, reply = post(f"{serve}/webhooks/github", headers, body)
    assert status == 202
    assert reply == {"delivery": headers["X-GitHub-Delivery"], "mirrors": [mirror.id], "queued": 1}
    jobs = queued(aws)
    assert len(jobs) == 1 and jobs[0]["group"] == mirror.id and jobs[0]["mirror_id"] == mirror.id
    assert jobs[0]["delivery_id"] == headers["X-GitHub-Delivery"] and jobs[0]["trigger"] == "webhook"
    assert set(jobs[0]) == {
        "mirror_id",
        "trigger",
        "delivery_id",
        "enqueued_at",
        "group",
    }  # no URLs, no secrets
    assert store().get(mirror.id).update_status == UpdateStatus.SCHEDULED  # type: ignore[union-attr]
    status, reply = post(f"{serve}/webhooks/github", headers, body)
    assert status == 200 and reply["duplicate"] is True and reply["queued"] == 0
    assert len(queued(aws)) == 1


@pytest.mark.parametrize(
    "name",
    ["push-create.json", "push-tag.json", "push-delete.json", "push-forced.json", "push-tag-delete.json"],
)
def test_every_github_push_kind_enqueues(aws: AwsEnv, serve: str, name: str) -> None:
    data = json.loads(payload(f"github/{name}"))
    add_mirror(aws, SRC, DST, repo_id=str(data["repository"]["id"]), full_name=None)
    status, reply = post(f"{serve}/webhooks/github", *github_push(payload(f"github/{name}")))
    assert status == 202, reply
    assert len(queued(aws)) == 1


def test_github_form_encoded_body(aws: AwsEnv, serve: str) -> None:
    add_mirror(aws, SRC, DST)
    body = b"payload=" + urllib.parse.quote_plus(payload("github/push.json")).encode()
    headers, _ = github_push(body)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    status, reply = post(f"{serve}/webhooks/github", headers, body)
    assert status == 202, reply
    assert len(queued(aws)) == 1


def test_fan_out_and_matching_by_full_name(aws: AwsEnv, serve: str) -> None:
    first = add_mirror(aws, SRC, DST, repo_id="63933911", full_name=None)
    second = add_mirror(aws, SRC, DST, repo_id=None, full_name="BinkKatal/Sample_App")
    status, reply = post(f"{serve}/webhooks/github", *github_push())
    assert status == 202 and reply["queued"] == 2
    assert sorted(reply["mirrors"]) == sorted([first.id, second.id])
    assert sorted(j["group"] for j in queued(aws)) == sorted([first.id, second.id])


def test_ping_and_other_events_are_ignored(aws: AwsEnv, serve: str) -> None:
    ping = payload("github/ping.json")
    status, reply = post(f"{serve}/webhooks/github", *github_push(ping, event="ping"))
    assert status == 200 and "ignored" in reply
    add_mirror(aws, SRC, DST, repo_id="186853261", full_name=None)
    status, reply = post(f"{serve}/webhooks/github", *github_push(ping, event="ping"))
    assert status == 200 and "ignored" in reply
    # a non-push event is ignored unverified, mirrored repository or not: no oracle either way
    headers, body = github_push(ping, event="ping", secret="wrong")
    assert post(f"{serve}/webhooks/github", headers, body)[0] == 200
    assert queued(aws) == []


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda h, b: ({**h, "X-Hub-Signature-256": sign_github(b, "not-the-secret")}, b), 401),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-Hub-Signature-256"}, b), 401),
        (lambda h, b: ({**h, "X-Hub-Signature-256": "sha256=zz"}, b), 401),
        (lambda h, b: (h, b + b" "), 401),  # body changed after signing
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-GitHub-Event"}, b), 400),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-GitHub-Delivery"}, b), 400),
    ],
)
def test_github_rejections_enqueue_nothing(aws: AwsEnv, serve: str, mutate: Any, status: int) -> None:
    add_mirror(aws, SRC, DST)
    headers, body = mutate(*github_push())
    got, reply = post(f"{serve}/webhooks/github", headers, body)
    assert got == status
    assert isinstance(reply, dict) and isinstance(reply.get("error"), str)
    assert WEBHOOK_SECRET not in json.dumps(reply)
    assert queued(aws) == []


def test_malformed_json_with_valid_signature_is_400(aws: AwsEnv, serve: str) -> None:
    add_mirror(aws, SRC, DST)
    body = b'{"repository": {"id": 63933911, "full_name": "binkkatal/sample_app"}, "ref": 5'
    got, reply = post(f"{serve}/webhooks/github", *github_push(body))
    assert got == 400 and "error" in reply
    body = json.dumps({"repository": {"id": 63933911, "full_name": "binkkatal/sample_app"}}).encode()
    got, reply = post(f"{serve}/webhooks/github", *github_push(body))
    assert got == 400 and "error" in reply  # a push without ref/before/after does not match the event
    assert queued(aws) == []


def test_unknown_repository_gets_the_answer_of_a_bad_signature(aws: AwsEnv, serve: str) -> None:
    """No oracle: an unauthenticated caller cannot tell which repositories are mirrored."""
    mirrored = add_mirror(aws, SRC, DST, repo_id="1", full_name="someone/else")
    unknown = post(f"{serve}/webhooks/github", *github_push())
    assert unknown == (401, {"error": "invalid signature"})
    mirrored_body = (
        github_push()[1].replace(b"63933911", b"1").replace(b"binkkatal/sample_app", b"someone/else")
    )
    bad = post(f"{serve}/webhooks/github", *github_push(mirrored_body, secret="wrong"))
    assert bad == unknown
    assert post(f"{serve}/webhooks/github", *github_push(mirrored_body))[0] == 202  # the body is right
    assert mirrored.id in [m["mirror_id"] for m in queued(aws)]


def test_routes_and_methods(aws: AwsEnv, serve: str) -> None:
    headers, body = github_push()
    assert post(f"{serve}/webhooks/bitbucket", headers, body)[0] == 404
    assert post(f"{serve}/elsewhere", headers, body)[0] == 404
    got, reply = post(f"{serve}/webhooks/github", {}, b"", method="GET")
    assert got == 405 and "error" in reply
    assert post(f"{serve}/webhooks/github", headers, body, method="PUT")[0] == 405


def test_body_over_the_limit_is_413(aws: AwsEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "1000")
    add_mirror(aws, SRC, DST)
    webhook = load_function("webhook")
    headers, body = github_push()
    status, _h, raw = invoke_http(webhook, http_event("POST", "/webhooks/github", headers, body))
    assert status == 413 and "error" in json.loads(raw)
    assert queued(aws) == []


def test_base64_encoded_event_body(aws: AwsEnv) -> None:
    add_mirror(aws, SRC, DST)
    webhook = load_function("webhook")
    headers, body = github_push()
    event = http_event("POST", "/webhooks/github", headers, body)
    event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    status, _h, raw = invoke_http(webhook, event)
    assert status == 202, raw
    event["body"] = "!!!not base64!!!"
    event["headers"]["x-github-delivery"] = str(uuid.uuid4())
    status, _h, raw = invoke_http(webhook, event)
    assert status == 400


@pytest.mark.parametrize(
    ("name", "event", "repo"),
    [
        ("gitlab/push-hook.json", "Push Hook", ("15", "mike/diaspora")),
        ("gitlab/tag-push-hook.json", "Tag Push Hook", ("1", "jsmith/example")),
        ("gitlab/system-hook-push.json", "System Hook", ("15", "mike/diaspora")),
    ],
)
def test_gitlab_events_with_secret_token(
    aws: AwsEnv, serve: str, name: str, event: str, repo: tuple[str, str]
) -> None:
    mirror = add_mirror(aws, SRC, DST, provider="gitlab", repo_id=repo[0], full_name=repo[1])
    headers, body = gitlab_push(name, event)
    status, reply = post(f"{serve}/webhooks/gitlab", headers, body)
    assert status == 202, reply
    assert reply["delivery"] == headers["Idempotency-Key"] and reply["mirrors"] == [mirror.id]
    headers["X-Gitlab-Token"] = "wrong-token"
    headers["Idempotency-Key"] = str(uuid.uuid4())
    assert post(f"{serve}/webhooks/gitlab", headers, body)[0] == 401
    assert len(queued(aws)) == 1


def test_gitlab_signing_token(aws: AwsEnv, serve: str) -> None:
    import time

    token = "whsec_Z2l0bWlycm9yLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk="
    add_mirror(aws, SRC, DST, provider="gitlab", repo_id="15", full_name=None, webhook_secret_value=token)
    status, reply = post(f"{serve}/webhooks/gitlab", *gitlab_push(signing=token))
    assert status == 202, reply
    stale = int(time.time()) - 600
    assert post(f"{serve}/webhooks/gitlab", *gitlab_push(signing=token, timestamp=stale))[0] == 401
    future = int(time.time()) + 600
    assert post(f"{serve}/webhooks/gitlab", *gitlab_push(signing=token, timestamp=future))[0] == 401
    assert len(queued(aws)) == 1


def test_gitea_push(aws: AwsEnv, serve: str) -> None:
    mirror = add_mirror(aws, SRC, DST, provider="gitea", repo_id="1", full_name="example/example")
    status, reply = post(f"{serve}/webhooks/gitea", *gitea_push())
    assert status == 202 and reply["mirrors"] == [mirror.id]
    assert post(f"{serve}/webhooks/gitea", *gitea_push(secret="wrong"))[0] == 401
    # a GitHub-signed delivery to the Gitea route uses the Gitea fallback header, still verified
    headers, body = gitea_push()
    headers.pop("X-Gitea-Signature")
    headers["X-Hub-Signature-256"] = sign_github(body, WEBHOOK_SECRET)
    assert post(f"{serve}/webhooks/gitea", headers, body)[0] == 202


def test_disabled_mirror_is_not_triggered(aws: AwsEnv, serve: str) -> None:
    mirror = add_mirror(aws, SRC, DST)
    store().update_settings(mirror.id, {"enabled": False})
    assert post(f"{serve}/webhooks/github", *github_push())[0] == 401
    assert queued(aws) == []


def test_replays_under_new_delivery_ids_are_duplicates(aws: AwsEnv, serve: str) -> None:
    """GitHub signs the body only; GitLab's signing token signs `webhook-id`, not Idempotency-Key.
    A captured delivery re-sent with a fresh unsigned id is answered 200 duplicate, nothing queued."""
    add_mirror(aws, SRC, DST)
    headers, body = github_push()
    assert post(f"{serve}/webhooks/github", headers, body)[0] == 202
    replay = {**headers, "X-GitHub-Delivery": str(uuid.uuid4())}
    status, reply = post(f"{serve}/webhooks/github", replay, body)
    assert status == 200 and reply["duplicate"] is True and reply["queued"] == 0
    assert len(queued(aws)) == 1

    token = "whsec_Z2l0bWlycm9yLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk="
    add_mirror(aws, SRC, DST, provider="gitlab", repo_id="15", full_name=None, webhook_secret_value=token)
    headers, body = gitlab_push(signing=token)
    status, reply = post(f"{serve}/webhooks/gitlab", headers, body)
    assert status == 202 and reply["delivery"] == headers["webhook-id"]  # the signed id is the delivery
    replay = {**headers, "Idempotency-Key": str(uuid.uuid4()), "X-Gitlab-Event-UUID": str(uuid.uuid4())}
    status, reply = post(f"{serve}/webhooks/gitlab", replay, body)
    assert status == 200 and reply["duplicate"] is True
    assert len(queued(aws)) == 2
    assert headers["webhook-id"] in {job["delivery_id"] for job in queued(aws)}


def test_a_missing_webhook_secret_is_a_configuration_error_naming_the_mirror(
    aws: AwsEnv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not "retry later": GitHub does not redeliver by itself. Logged with the mirror id, counted."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    mirror = add_mirror(aws, SRC, DST)
    store().update_settings(mirror.id, {"webhook_secret": "gitmirror/nowhere/webhook"})
    webhook = load_function("webhook")
    status, _h, raw = invoke_http(webhook, http_event("POST", "/webhooks/github", *github_push()))
    reply = json.loads(raw)
    assert status == 500 and f"mirror {mirror.id} is misconfigured" in reply["error"]
    assert "gitmirror/nowhere/webhook" in reply["error"] and "retry later" not in reply["error"]
    assert queued(aws) == []
    [logged] = [r for r in caplog.records if r.getMessage() == "webhook not accepted: mirror misconfigured"]
    assert logged.levelname == "ERROR" and getattr(logged, "mirror_id", None) == mirror.id
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(
        line.get("WebhookSecretErrors") == [1.0] or line.get("WebhookSecretErrors") == 1.0 for line in lines
    )
