"""Property-based fuzzing of the receiver through its Lambda handler (moto server behind it).

Properties: never a 5xx; every rejection is a JSON error; nothing is enqueued unless the signature
and the payload are valid; the queue holds exactly what the 202 replies say was queued.
`make fuzz` runs 10,000 cases (GITMIRROR_FUZZ_EXAMPLES); `make test` a smaller budget.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

from gitmirror.errors import WebhookPayloadError
from gitmirror.settings import CliSettings, load
from gitmirror.values import Provider
from gitmirror.webhook.payloads import PushEvent, parse_webhook
from gitmirror_dev.lambdas import http_event, invoke_http, load_function
from gitmirror_dev.moto_stack import create_resources, local_environment
from gitmirror_dev.signing import sign_gitea, sign_github, sign_standard_webhook
from tests.conftest import WEBHOOKS

EXAMPLES = int(os.environ.get("GITMIRROR_FUZZ_EXAMPLES", "150"))
SECRET = "fuzz-webhook-secret-0123"
SEED_FILES = {
    "github": [("push.json", "push"), ("push-tag.json", "push"), ("ping.json", "ping")],
    "gitlab": [("push-hook.json", "Push Hook"), ("system-hook-push.json", "System Hook")],
    "gitea": [("push.json", "push")],
}
SEEDS = {p: [(WEBHOOKS / p / name).read_bytes() for name, _e in files] for p, files in SEED_FILES.items()}
EVENTS = {
    "github": ("X-GitHub-Event", ["push", "ping", "issues", ""]),
    "gitlab": ("X-Gitlab-Event", ["Push Hook", "Tag Push Hook", "System Hook", "Note Hook", ""]),
    "gitea": ("X-Gitea-Event", ["push", "create", ""]),
}
DELIVERY = {"github": "X-GitHub-Delivery", "gitlab": "Idempotency-Key", "gitea": "X-Gitea-Delivery"}


@pytest.fixture(scope="module")
def receiver(moto_endpoint: str) -> Iterator[dict[str, Any]]:
    from gitmirror.adapters.aws.mirror_table import MirrorStore
    from gitmirror.manage.mirrors import create_mirror
    from gitmirror.records import MirrorSpec
    from gitmirror_dev.moto_stack import put_secret

    with pytest.MonkeyPatch.context() as mp:
        for key, value in local_environment(moto_endpoint, f"fz{uuid.uuid4().hex[:8]}").items():
            mp.setenv(key, value)
        settings_ = load(CliSettings)
        queue_url = create_resources(settings_)["queue_url"]
        put_secret("gitmirror/fuzz/webhook", SECRET)
        put_secret("gitmirror/fuzz/target", json.dumps({"token": "x-fuzz-token"}))
        store = MirrorStore(settings_.mirrors_table, settings_.runs_table)
        for provider, repo_id in (
            ("github", "63933911"),
            ("github", "13933572"),
            ("gitlab", "15"),
            ("gitea", "1"),
        ):
            spec = MirrorSpec(
                source_url="https://example.com/src.git",
                url="https://example.com/dst.git",
                provider=Provider(provider),
                source_repo_id=repo_id,
                target_secret="gitmirror/fuzz/target",
                webhook_secret="gitmirror/fuzz/webhook",
            )
            create_mirror(spec, store, settings_.policy, settings_.secrets_prefix)
        yield {"handler": load_function("webhook"), "queue_url": queue_url, "queued": [0]}


def mutate(data: bytes, draw: Any) -> bytes:
    kind = draw(st.sampled_from(["none", "flip", "truncate", "insert", "replace-json-value"]))
    if kind == "none" or not data:
        return data
    pos = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        return data[:pos] + bytes([data[pos] ^ draw(st.integers(1, 255))]) + data[pos + 1 :]
    if kind == "truncate":
        return data[:pos]
    if kind == "insert":
        return data[:pos] + draw(st.binary(min_size=1, max_size=16)) + data[pos:]
    try:
        obj = json.loads(data)
    except ValueError:
        return data
    if isinstance(obj, dict) and obj:
        key = draw(st.sampled_from(sorted(obj)))
        obj[key] = draw(
            st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3))
        )
    return json.dumps(obj).encode()


@st.composite
def deliveries(draw: Any) -> dict[str, Any]:
    provider = draw(st.sampled_from(["github", "gitlab", "gitea"]))
    header, names = EVENTS[provider]
    if draw(st.integers(0, 2)) == 0:
        # a well-formed delivery, then at most one thing wrong with it
        name, event = draw(st.sampled_from(SEED_FILES[provider]))
        body = (WEBHOOKS / provider / name).read_bytes()
        if draw(st.booleans()):
            body = mutate(body, draw)
        headers = {header: event, DELIVERY[provider]: str(uuid.uuid4()), "Content-Type": "application/json"}
        return _signed(provider, headers, body, draw, form=False)
    body = draw(
        st.one_of(
            st.sampled_from(SEEDS[provider]),
            st.binary(max_size=512),
            st.text(max_size=256).map(str.encode),
            st.dictionaries(st.text(max_size=8), st.integers(), max_size=4).map(
                lambda d: json.dumps(d).encode()
            ),
        )
    )
    body = mutate(body, draw)
    form = provider == "github" and draw(st.booleans())
    if form:
        body = b"payload=" + urllib.parse.quote_plus(body).encode()
    headers: dict[str, str] = {}
    event = draw(st.one_of(st.sampled_from(names), st.text(max_size=12)))
    if draw(st.integers(0, 9)) > 0:
        headers[header] = event
    if draw(st.integers(0, 9)) > 0:
        headers[DELIVERY[provider]] = draw(st.one_of(st.uuids().map(str), st.text(max_size=40)))
    headers["Content-Type"] = "application/x-www-form-urlencoded" if form else "application/json"
    return _signed(provider, headers, body, draw, form=form)


def _signed(provider: str, headers: dict[str, str], body: bytes, draw: Any, *, form: bool) -> dict[str, Any]:
    sign = draw(st.sampled_from(["valid", "valid", "valid", "wrong", "missing", "garbage"]))
    secret = SECRET if sign == "valid" else "not-the-secret"
    if sign != "missing":
        if provider == "github":
            headers["X-Hub-Signature-256"] = sign_github(body, secret) if sign != "garbage" else "sha256=zz"
        elif provider == "gitea":
            headers["X-Gitea-Signature"] = sign_gitea(body, secret) if sign != "garbage" else "xyz"
        elif draw(st.booleans()):
            headers["X-Gitlab-Token"] = secret if sign != "garbage" else ""
        else:
            import time

            wid, ts = str(uuid.uuid4()), str(int(time.time()))
            token = "whsec_" + base64.b64encode(SECRET.encode()).decode()
            headers.update({"webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": "v1,abc"})
            if sign == "valid":
                headers["webhook-signature"] = sign_standard_webhook(body, wid, ts, token)
    for _ in range(draw(st.integers(0, 2))):
        headers[draw(st.sampled_from(["X-Extra", "Content-Encoding", "User-Agent"]))] = draw(
            st.text(max_size=10)
        )
    return {
        "provider": provider,
        "headers": headers,
        "body": body,
        "valid_signature": sign == "valid",
        "b64": draw(st.booleans()),
    }


def _clean_header_values(headers: dict[str, str]) -> dict[str, str]:
    # API Gateway delivers header values as strings without control characters
    return {k: "".join(ch for ch in v if ch.isprintable()) for k, v in headers.items()}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(case=deliveries())
def test_receiver_properties(receiver: dict[str, Any], case: dict[str, Any]) -> None:
    headers = _clean_header_values(case["headers"])
    event = http_event("POST", f"/webhooks/{case['provider']}", headers, case["body"])
    if case["b64"]:
        event["body"], event["isBase64Encoded"] = base64.b64encode(case["body"]).decode(), True
    status, _h, raw = invoke_http(receiver["handler"], event)
    hypothesis_event(f"HTTP {status}")
    assert status < 500, raw
    reply = json.loads(raw)
    assert isinstance(reply, dict)
    if status >= 400:
        assert isinstance(reply.get("error"), str) and reply["error"]
        assert SECRET not in raw.decode()
    if status == 202:
        assert case["valid_signature"], "enqueued without a valid signature"
        try:
            parsed = parse_webhook(Provider(case["provider"]), headers, case["body"])
        except WebhookPayloadError:
            pytest.fail("enqueued a payload that does not parse")
        assert isinstance(parsed, PushEvent)
        receiver["queued"][0] += int(reply["queued"])


def test_queue_holds_exactly_what_was_accepted(receiver: dict[str, Any]) -> None:
    sqs = boto3.client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=receiver["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert int(attrs["Attributes"]["ApproximateNumberOfMessages"]) == receiver["queued"][0]
