"""Webhook signature checks against published and per-file vectors in tests/fixtures/webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from gitmirror.errors import SignatureError
from gitmirror.webhook.signatures import (
    get_header,
    verify_gitea_signature,
    verify_github_signature,
    verify_gitlab,
    verify_gitlab_token,
    verify_standard_webhook,
)
from gitmirror_dev.signing import sign_gitea, sign_github, sign_standard_webhook
from tests.conftest import WEBHOOKS

VECTORS: dict[str, Any] = json.loads((WEBHOOKS / "signatures.json").read_text(encoding="utf-8"))
PARAMS: dict[str, str] = VECTORS["parameters"]
SECRET = PARAMS["secret"]
TOKEN_A = PARAMS["gitlab_signing_token_A"]
TOKEN_B = PARAMS["gitlab_signing_token_B"]
WEBHOOK_ID = PARAMS["gitlab_webhook_id"]
WEBHOOK_TS = PARAMS["gitlab_webhook_timestamp"]
NOW = float(WEBHOOK_TS)

GITHUB_FILES = sorted(name for name in VECTORS["files"] if name.startswith("github/"))
GITLAB_FILES = sorted(name for name in VECTORS["files"] if name.startswith("gitlab/"))
GITEA_FILES = sorted(name for name in VECTORS["files"] if name.startswith("gitea/"))
SIG_A = "webhook-signature (signing token A)"
SIG_B = "webhook-signature (signing token B, 32-byte key)"


def body_of(name: str) -> bytes:
    return (WEBHOOKS / name).read_bytes()


def test_vector_files_are_present_and_unchanged() -> None:
    assert len(GITHUB_FILES) == 7 and len(GITLAB_FILES) == 3 and len(GITEA_FILES) == 1
    for name, vector in VECTORS["files"].items():
        body = body_of(name)
        assert len(body) == vector["bytes"], name
        assert hashlib.sha256(body).hexdigest() == vector["sha256_of_file"], name


# --------------------------------------------------------------------------- GitHub


def test_github_docs_vector() -> None:
    # docs.github.com "Validating webhook deliveries" test values
    secret = "It's a Secret to Everybody"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign_github(b"Hello, World!", secret) == expected
    verify_github_signature(b"Hello, World!", expected, secret)
    with pytest.raises(SignatureError):
        verify_github_signature(b"Hello, World!\n", expected, secret)


@pytest.mark.parametrize("name", GITHUB_FILES)
def test_github_file_vectors(name: str) -> None:
    body = body_of(name)
    header = VECTORS["files"][name]["X-Hub-Signature-256"]
    assert sign_github(body, SECRET) == header
    verify_github_signature(body, header, SECRET)
    verify_github_signature(body, header.upper().replace("SHA256=", "sha256="), SECRET)  # hex case
    verify_github_signature(body, "SHA256=" + header.removeprefix("sha256="), SECRET)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_github_signature(body + b" ", header, SECRET)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_github_signature(body, header, SECRET + "x")


def test_github_literal_file_vector() -> None:
    verify_github_signature(
        body_of("github/push.json"),
        "sha256=109ea1b2f998aba8a919f060d2582ff328d7ef8d00ef8be7d537e43ec102b875",
        "gitmirror-test-secret",
    )


def test_github_form_encoded_vector_signs_the_form_body() -> None:
    form = urlencode({"payload": (WEBHOOKS / "github/push.json").read_text(encoding="utf-8")}).encode()
    assert len(form) == 11807
    assert hashlib.sha256(form).hexdigest() == (
        "496707f876608b2c3d2f36c972ec91847cdf0b05f7569fa71dc6ddc00c5b56f5"
    )
    header = "sha256=3017d96430e445befae3287cd3cbcf6546735b6788b44ef5308b37a123c13e2d"
    verify_github_signature(form, header, SECRET)
    with pytest.raises(SignatureError):  # the JSON inside is not what GitHub signed
        verify_github_signature(body_of("github/push.json"), header, SECRET)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "109ea1b2f998aba8a919f060d2582ff328d7ef8d00ef8be7d537e43ec102b875",  # no prefix
        "sha1=90d463ea99506fdb13fa60e9c1492648df83a0f2",  # legacy SHA-1 not accepted
        "sha256=",
        "sha256=109ea1b2f998aba8a919f060d2582ff328d7ef8d00ef8be7d537e43ec102b87",  # 63 hex
        "sha256=109ea1b2f998aba8a919f060d2582ff328d7ef8d00ef8be7d537e43ec102b8755",  # 65 hex
        "sha256=zz9ea1b2f998aba8a919f060d2582ff328d7ef8d00ef8be7d537e43ec102b875",
        "sha256=\uff1109ea1b2f998aba8a919f060d2582ff328d7ef8d00ef8be7d537e43ec102b875",  # non-ASCII digit
        "sha512=109ea1b2f998aba8a919f060d2582ff328d7ef8d00ef8be7d537e43ec102b875",
    ],
)
def test_github_malformed_headers(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_github_signature(body_of("github/push.json"), header, SECRET)


def test_github_tampered_signature() -> None:
    header = VECTORS["files"]["github/push.json"]["X-Hub-Signature-256"]
    flipped = header[:-1] + ("0" if header[-1] != "0" else "1")
    with pytest.raises(SignatureError, match="mismatch"):
        verify_github_signature(body_of("github/push.json"), flipped, SECRET)


def test_empty_secret_refused_even_with_matching_hmac() -> None:
    body = body_of("github/push.json")
    empty_sig = "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError, match="not configured"):
        verify_github_signature(body, empty_sig, "")
    with pytest.raises(SignatureError, match="not configured"):
        verify_gitea_signature(body, {"X-Gitea-Signature": ""}, "")
    with pytest.raises(SignatureError, match="not configured"):
        verify_gitlab_token("", "")


def test_error_messages_do_not_leak() -> None:
    body = body_of("github/push.json")
    expected = sign_github(body, SECRET)
    wrong = "sha256=" + "0" * 64
    with pytest.raises(SignatureError) as info:
        verify_github_signature(body, wrong, SECRET)
    message = str(info.value)
    assert SECRET not in message
    assert expected.removeprefix("sha256=") not in message
    assert "0" * 64 not in message
    with pytest.raises(SignatureError) as info2:
        verify_gitlab_token("guess", SECRET)
    assert SECRET not in str(info2.value) and "guess" not in str(info2.value)


# --------------------------------------------------------------------------- Gitea


@pytest.mark.parametrize("name", GITEA_FILES)
def test_gitea_file_vectors(name: str) -> None:
    body = body_of(name)
    vector = VECTORS["files"][name]
    assert sign_gitea(body, SECRET) == vector["X-Gitea-Signature"]
    full = {
        "X-Gitea-Signature": vector["X-Gitea-Signature"],
        "X-Gogs-Signature": vector["X-Gogs-Signature"],
        "X-Hub-Signature": vector["X-Hub-Signature"],
        "X-Hub-Signature-256": vector["X-Hub-Signature-256"],
        "Content-Type": "application/json",
    }
    verify_gitea_signature(body, full, SECRET)
    verify_gitea_signature(body, {k.lower(): v for k, v in full.items()}, SECRET)  # Lambda URL style
    verify_gitea_signature(body, {"x-gitea-signature": vector["X-Gitea-Signature"]}, SECRET)
    verify_gitea_signature(body, {"X-Gogs-Signature": vector["X-Gogs-Signature"]}, SECRET)
    verify_gitea_signature(body, {"X-Hub-Signature-256": vector["X-Hub-Signature-256"]}, SECRET)
    # empty X-Gitea-Signature (what Gitea sends without a secret) falls back to X-Hub-Signature-256
    verify_gitea_signature(
        body, {"X-Gitea-Signature": "", "X-Hub-Signature-256": vector["X-Hub-Signature-256"]}, SECRET
    )
    with pytest.raises(SignatureError, match="mismatch"):
        verify_gitea_signature(body[:-1], full, SECRET)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_gitea_signature(body, full, "another-secret")


def test_gitea_literal_vector() -> None:
    verify_gitea_signature(
        body_of("gitea/push.json"),
        {"X-Gitea-Signature": "d5a2038ebc3506c13ea6ee7b3da8efb7d28b6b057c5c475848ccba425ab43eb1"},
        "gitmirror-test-secret",
    )


def test_gitea_wrong_primary_header_does_not_fall_back() -> None:
    vector = VECTORS["files"]["gitea/push.json"]
    headers = {"X-Gitea-Signature": "0" * 64, "X-Hub-Signature-256": vector["X-Hub-Signature-256"]}
    with pytest.raises(SignatureError, match="mismatch"):
        verify_gitea_signature(body_of("gitea/push.json"), headers, SECRET)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Gitea-Signature": "", "X-Hub-Signature-256": "sha256="},  # Gitea without a secret
        {"X-Gitea-Signature": "sha256=" + "0" * 64},  # prefix not expected here
        {"X-Gitea-Signature": "xyz"},
        {"X-Hub-Signature": "sha1=f5482e73e010969564088b4ef3b16fecc024a002"},
    ],
)
def test_gitea_missing_or_malformed(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        verify_gitea_signature(body_of("gitea/push.json"), headers, SECRET)


def test_gitea_form_encoded_body_checks_the_signed_json_payload() -> None:
    # Gitea signs the JSON (HookTask.PayloadContent) even when it sends payload=<JSON> as a form.
    text = (WEBHOOKS / "gitea/push.json").read_text(encoding="utf-8")
    form = urlencode({"payload": text}).encode()
    sig = VECTORS["files"]["gitea/push.json"]["X-Gitea-Signature"]
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Gitea-Signature": sig}
    verify_gitea_signature(form, headers, SECRET)
    with pytest.raises(SignatureError):
        verify_gitea_signature(form, {"X-Gitea-Signature": sig}, SECRET)  # as JSON: mismatch
    with pytest.raises(SignatureError, match="form"):
        verify_gitea_signature(b"nopayload=1", headers, SECRET)
    with pytest.raises(SignatureError, match="form"):
        verify_gitea_signature(form + b"&" + form, headers, SECRET)


# --------------------------------------------------------------------------- GitLab token


@pytest.mark.parametrize("name", GITLAB_FILES)
def test_gitlab_token_vectors(name: str) -> None:
    token = VECTORS["files"][name]["X-Gitlab-Token"]
    verify_gitlab_token(token, SECRET)
    verify_gitlab(body_of(name), {"X-Gitlab-Token": token}, SECRET)
    verify_gitlab(body_of(name), {"x-gitlab-token": token}, SECRET)


@pytest.mark.parametrize("token", [None, "", "gitmirror-test-secreT", "gitmirror-test-secret ", "é"])
def test_gitlab_token_rejected(token: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_gitlab_token(token, SECRET)
    headers = {} if token is None else {"X-Gitlab-Token": token}
    with pytest.raises(SignatureError):
        verify_gitlab(b"{}", headers, SECRET)


# --------------------------------------------------------------------------- Standard Webhooks


# Published Standard Webhooks vectors (standard-webhooks repo, python/go/js and rust test_sign).
PUBLISHED = [
    (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        b'{"test": 2432232314}',
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ),
    (
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        "1649367553",
        b'{"email":"test@example.com","username":"test_user"}',
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    ),
]


@pytest.mark.parametrize(("token", "msg_id", "ts", "body", "signature"), PUBLISHED)
def test_standard_webhooks_published_vectors(
    token: str, msg_id: str, ts: str, body: bytes, signature: str
) -> None:
    assert sign_standard_webhook(body, msg_id, ts, token) == signature
    assert sign_standard_webhook(body, msg_id, int(ts), token) == signature
    verify_standard_webhook(body, msg_id, ts, signature, token, now=float(ts))
    with pytest.raises(SignatureError, match="mismatch"):
        verify_standard_webhook(body + b" ", msg_id, ts, signature, token, now=float(ts))
    with pytest.raises(SignatureError, match="mismatch"):
        verify_standard_webhook(body, msg_id + "x", ts, signature, token, now=float(ts))


@pytest.mark.parametrize("name", GITLAB_FILES)
@pytest.mark.parametrize(("token", "key"), [(TOKEN_A, SIG_A), (TOKEN_B, SIG_B)])
def test_gitlab_signing_token_vectors(name: str, token: str, key: str) -> None:
    body = body_of(name)
    signature = VECTORS["files"][name][key]
    assert VECTORS["files"][name]["webhook-id"] == WEBHOOK_ID
    assert VECTORS["files"][name]["webhook-timestamp"] == WEBHOOK_TS
    assert sign_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, token) == signature
    verify_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, signature, token, now=NOW)
    headers = {
        "Idempotency-Key": WEBHOOK_ID,
        "webhook-id": WEBHOOK_ID,
        "webhook-timestamp": WEBHOOK_TS,
        "webhook-signature": signature,
    }
    verify_gitlab(body, headers, token, now=NOW)
    verify_gitlab(body, {k.title(): v for k, v in headers.items()}, token, now=NOW)
    other = TOKEN_B if token == TOKEN_A else TOKEN_A
    with pytest.raises(SignatureError, match="mismatch"):
        verify_gitlab(body, headers, other, now=NOW)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_gitlab(body.replace(b"master", b"main"), headers, token, now=NOW)


def test_signing_token_keys_decode_as_documented() -> None:
    # the key is the base64-decoded part after whsec_, not the token text itself
    assert base64.b64decode(TOKEN_A.removeprefix("whsec_")) == b"gitmirror-test-secret"
    assert len(base64.b64decode(TOKEN_B.removeprefix("whsec_"))) == 32
    body = body_of("gitlab/push-hook.json")
    assert sign_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, TOKEN_A) == (
        "v1,57j6BBpZ8KMFDmM1NmAz9izMOCrN5wmkp+6IGnWUv+E="
    )


def _push_hook_signature() -> tuple[bytes, str]:
    body = body_of("gitlab/push-hook.json")
    return body, VECTORS["files"]["gitlab/push-hook.json"][SIG_A]


def test_standard_webhook_multiple_signatures() -> None:
    body, good = _push_hook_signature()
    bogus = "v1," + base64.b64encode(b"\0" * 32).decode()
    for header in (
        f"{bogus} {good}",
        f"{good} {bogus}",
        f"v1a,abc {good}",
        f"v2,{good[3:]} {good}",
        f"{bogus}  {good}",
    ):
        verify_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, header, TOKEN_A, now=NOW)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, f"{bogus} {bogus}", TOKEN_A, now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        "v2,57j6BBpZ8KMFDmM1NmAz9izMOCrN5wmkp+6IGnWUv+E=",  # wrong version
        "57j6BBpZ8KMFDmM1NmAz9izMOCrN5wmkp+6IGnWUv+E=",  # no version
        "v1=57j6BBpZ8KMFDmM1NmAz9izMOCrN5wmkp+6IGnWUv+E=",
        "v1,",
        "v1,57j6BBpZ8KMFDmM1NmAz9izMOCrN5wmkp+6IGnWUv+E",  # padding missing
        "v1,57j6BBpZ8KMFDmM1NmAz9izMOCrN5wmkp+6IGnWUv+é=",
        ",",
    ],
)
def test_standard_webhook_malformed_signature(header: str) -> None:
    body, _ = _push_hook_signature()
    with pytest.raises(SignatureError):
        verify_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, header, TOKEN_A, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
@pytest.mark.parametrize("empty", [False, True])
def test_standard_webhook_missing_headers(missing: str, empty: bool) -> None:
    body, good = _push_hook_signature()
    headers = {"webhook-id": WEBHOOK_ID, "webhook-timestamp": WEBHOOK_TS, "webhook-signature": good}
    if empty:
        headers[missing] = ""
    else:
        del headers[missing]
    with pytest.raises(SignatureError, match="missing"):
        verify_standard_webhook(
            body,
            headers.get("webhook-id"),
            headers.get("webhook-timestamp"),
            headers.get("webhook-signature"),
            TOKEN_A,
            now=NOW,
        )
    with pytest.raises(SignatureError, match="missing"):
        verify_gitlab(body, headers, TOKEN_A, now=NOW)


def test_gitlab_signing_token_mode_ignores_x_gitlab_token() -> None:
    body = body_of("gitlab/push-hook.json")
    with pytest.raises(SignatureError, match="missing"):
        verify_gitlab(body, {"X-Gitlab-Token": TOKEN_A}, TOKEN_A, now=NOW)
    # and a plain secret never enables the signature path
    _, good = _push_hook_signature()
    headers = {"webhook-id": WEBHOOK_ID, "webhook-timestamp": WEBHOOK_TS, "webhook-signature": good}
    with pytest.raises(SignatureError, match="missing token"):
        verify_gitlab(body, headers, SECRET, now=NOW)


@pytest.mark.parametrize(
    "timestamp",
    ["1700000000.0", "1.7e9", "abc", "-1700000000", "+1700000000", "\uff11\uff17", "1_700_000_000"],
)
def test_standard_webhook_non_integer_timestamp(timestamp: str) -> None:
    body, good = _push_hook_signature()
    with pytest.raises(SignatureError, match="timestamp"):
        verify_standard_webhook(body, WEBHOOK_ID, timestamp, good, TOKEN_A, now=NOW)


def test_standard_webhook_tolerance_window() -> None:
    body, good = _push_hook_signature()
    for now in (NOW - 300, NOW + 300, NOW + 299.5):
        verify_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, good, TOKEN_A, now=now)
    with pytest.raises(SignatureError, match="too old"):
        verify_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, good, TOKEN_A, now=NOW + 301)
    with pytest.raises(SignatureError, match="too new"):
        verify_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, good, TOKEN_A, now=NOW - 301)
    with pytest.raises(SignatureError, match="too old"):
        verify_standard_webhook(
            body, WEBHOOK_ID, WEBHOOK_TS, good, TOKEN_A, now=NOW + 61, tolerance_seconds=60
        )
    with pytest.raises(SignatureError, match="too old"):  # real clock: the 2023 vector is expired
        verify_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, good, TOKEN_A)
    with pytest.raises(SignatureError, match="too old"):
        verify_gitlab(
            body,
            {"webhook-id": WEBHOOK_ID, "webhook-timestamp": WEBHOOK_TS, "webhook-signature": good},
            TOKEN_A,
            now=NOW + 3600,
        )


def test_standard_webhook_round_trip_with_fresh_timestamp() -> None:
    body = body_of("gitlab/tag-push-hook.json")
    signature = sign_standard_webhook(body, "msg_1", 1_800_000_000, TOKEN_B)
    verify_standard_webhook(body, "msg_1", "1800000000", signature, TOKEN_B, now=1_800_000_010)


@pytest.mark.parametrize(
    "token", ["whsec_", "whsec_not base64!", "whsec_Z2l0bWlycm9yLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk", "plain"]
)
def test_invalid_signing_tokens(token: str) -> None:
    body, good = _push_hook_signature()
    with pytest.raises(SignatureError, match="invalid signing token"):
        verify_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, good, token, now=NOW)
    with pytest.raises(SignatureError, match="invalid signing token"):
        sign_standard_webhook(body, WEBHOOK_ID, WEBHOOK_TS, token)


# --------------------------------------------------------------------------- helpers


def test_get_header_is_case_insensitive() -> None:
    headers = {"x-hub-signature-256": "a", "Content-Type": "b"}
    assert get_header(headers, "X-Hub-Signature-256") == "a"
    assert get_header(headers, "content-type") == "b"
    assert get_header(headers, "X-Missing") is None
    assert get_header({"A": "exact", "a": "lower"}, "a") == "lower"
