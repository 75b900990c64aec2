"""Push payload parsing against the real deliveries in tests/fixtures/webhooks."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from gitmirror.errors import WebhookPayloadError
from gitmirror.webhook.payloads import (
    IgnoredEvent,
    Provider,
    PushEvent,
    delivery_id,
    event_name,
    parse_webhook,
    peek_repository,
    source_identity,
)
from tests.conftest import WEBHOOKS

ZERO = "0" * 40
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"  # GitHub docs example delivery id
GITLAB_UUID = "a5461c4d-9c7f-4af9-add6-cddebe3c426f"
GITEA_DELIVERY = "f6266f16-1bf3-46a5-9ea4-602e06ead473"  # Gitea docs example delivery id

# file -> (provider, event header value)
PUSH_FILES: dict[str, tuple[Provider, str]] = {
    "github/push.json": (Provider.GITHUB, "push"),
    "github/push-create.json": (Provider.GITHUB, "push"),
    "github/push-delete.json": (Provider.GITHUB, "push"),
    "github/push-forced.json": (Provider.GITHUB, "push"),
    "github/push-tag.json": (Provider.GITHUB, "push"),
    "github/push-tag-delete.json": (Provider.GITHUB, "push"),
    "gitlab/push-hook.json": (Provider.GITLAB, "Push Hook"),
    "gitlab/tag-push-hook.json": (Provider.GITLAB, "Tag Push Hook"),
    "gitlab/system-hook-push.json": (Provider.GITLAB, "System Hook"),
    "gitea/push.json": (Provider.GITEA, "push"),
}

# Looked up by hand in the files (and SOURCES.md):
# file -> (repo_id, full_name, ref, before, after, created, deleted, is_tag)
EXPECTED: dict[str, tuple[str, str, str, str, str, bool, bool, bool]] = {
    "github/push.json": (
        "63933911",
        "binkkatal/sample_app",
        "refs/heads/master",
        "737d38c599c1b2991664dfc6155d6bf516fcce36",
        "fd489864e7642b48eaad6e3f155c10e46810ec72",
        False,
        False,
        False,
    ),
    "github/push-create.json": (
        "186853002",
        "Codertocat/Hello-World",
        "refs/heads/master",
        ZERO,
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        True,
        False,
        False,
    ),
    "github/push-delete.json": (
        "13933572",
        "bradrydzewski/drone-test-go",
        "refs/heads/feature-branch",
        "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd",
        ZERO,
        False,
        True,
        False,
    ),
    "github/push-forced.json": (
        "700724239",
        "flightctl/flightctl",
        "refs/heads/EDM-1179",
        "d89fce43657c5fc2de8f677a052c9dcca941872a",
        "1f65bfd479dddb9453466feeaf4ac9249a2ac9df",
        False,
        False,
        False,
    ),
    "github/push-tag.json": (
        "13933572",
        "bradrydzewski/drone-test-go",
        "refs/tags/v0.0.1",
        ZERO,
        "d2b75aa7797ec26b088fa2dd527e9d2c052fcedd",
        True,
        False,
        True,
    ),
    "github/push-tag-delete.json": (
        "186853002",
        "Codertocat/Hello-World",
        "refs/tags/simple-tag",
        "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        ZERO,
        False,
        True,
        True,
    ),
    "gitlab/push-hook.json": (
        "15",
        "mike/diaspora",
        "refs/heads/master",
        "95790bf891e76fee5e1747ab589903a6a1f80f22",
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        False,
        False,
        False,
    ),
    "gitlab/tag-push-hook.json": (
        "1",
        "jsmith/example",
        "refs/tags/v1.0.0",
        ZERO,
        "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        True,
        False,
        True,
    ),
    "gitlab/system-hook-push.json": (
        "15",
        "mike/diaspora",
        "refs/heads/master",
        "95790bf891e76fee5e1747ab589903a6a1f80f22",
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        False,
        False,
        False,
    ),
    "gitea/push.json": (
        "1",
        "example/example",
        "refs/heads/master",
        ZERO,
        "67b56589a45103f891bdee7c0546e5d40bc02001",
        True,
        False,
        False,
    ),
}


def body_of(name: str) -> bytes:
    return (WEBHOOKS / name).read_bytes()


def json_of(name: str) -> dict[str, Any]:
    data = json.loads(body_of(name))
    assert isinstance(data, dict)
    return data


def headers_for(
    provider: Provider, event: str | None, content_type: str = "application/json"
) -> dict[str, str]:
    headers = {"Content-Type": content_type}
    if provider is Provider.GITHUB:
        headers |= {"X-GitHub-Delivery": DELIVERY, "User-Agent": "GitHub-Hookshot/044aadd"}
        if event is not None:
            headers["X-GitHub-Event"] = event
    elif provider is Provider.GITLAB:
        headers |= {"Idempotency-Key": GITLAB_UUID, "X-Gitlab-Event-UUID": "other-uuid"}
        if event is not None:
            headers["X-Gitlab-Event"] = event
    else:
        headers |= {"X-Gitea-Delivery": GITEA_DELIVERY, "X-Gitea-Event-Type": "push"}
        if event is not None:
            headers["X-Gitea-Event"] = event
    return headers


def parse_push(provider: Provider, headers: dict[str, str], body: bytes) -> PushEvent:
    result = parse_webhook(provider, headers, body)
    assert isinstance(result, PushEvent), result
    return result


def test_every_push_file_is_covered() -> None:
    on_disk = {str(p.relative_to(WEBHOOKS)) for p in WEBHOOKS.glob("*/*.json")}
    assert on_disk == set(PUSH_FILES) | {"github/ping.json"}


@pytest.mark.parametrize("name", sorted(PUSH_FILES))
def test_real_push_files_match_file_contents(name: str) -> None:
    provider, event = PUSH_FILES[name]
    data = json_of(name)
    parsed = parse_push(provider, headers_for(provider, event), body_of(name))
    assert parsed.provider is provider
    assert parsed.event == event
    assert parsed.ref == data["ref"]
    assert parsed.before == data["before"]
    assert parsed.after == data["after"]
    if provider is Provider.GITLAB:
        assert parsed.repo_id == str(data["project_id"])
        assert parsed.repo_full_name == data["project"]["path_with_namespace"]
    else:
        assert parsed.repo_id == str(data["repository"]["id"])
        assert parsed.repo_full_name == data["repository"]["full_name"]
    # GitHub states created/deleted itself; they must agree with the SHAs.
    if "created" in data:
        assert parsed.created is data["created"]
        assert parsed.deleted is data["deleted"]
    assert parsed.is_tag is data["ref"].startswith("refs/tags/")
    assert source_identity(parsed) == (provider.value, parsed.repo_id)


@pytest.mark.parametrize("name", sorted(PUSH_FILES))
def test_real_push_files_match_literal_values(name: str) -> None:
    provider, event = PUSH_FILES[name]
    parsed = parse_push(provider, headers_for(provider, event), body_of(name))
    repo_id, full_name, ref, before, after, created, deleted, is_tag = EXPECTED[name]
    assert (parsed.repo_id, parsed.repo_full_name, parsed.ref) == (repo_id, full_name, ref)
    assert (parsed.before, parsed.after) == (before, after)
    assert (parsed.created, parsed.deleted, parsed.is_tag) == (created, deleted, is_tag)
    assert peek_repository(provider, {}, body_of(name)) == (repo_id, full_name)


def test_delivery_ids_of_parsed_events() -> None:
    assert (
        parse_push(
            Provider.GITHUB, headers_for(Provider.GITHUB, "push"), body_of("github/push.json")
        ).delivery_id
        == DELIVERY
    )
    gitlab = parse_push(
        Provider.GITLAB, headers_for(Provider.GITLAB, "Push Hook"), body_of("gitlab/push-hook.json")
    )
    assert gitlab.delivery_id == GITLAB_UUID  # Idempotency-Key wins over X-Gitlab-Event-UUID
    gitea = parse_push(Provider.GITEA, headers_for(Provider.GITEA, "push"), body_of("gitea/push.json"))
    assert gitea.delivery_id == GITEA_DELIVERY


def test_headers_are_case_insensitive() -> None:
    lower = {k.lower(): v for k, v in headers_for(Provider.GITHUB, "push").items()}
    assert parse_push(Provider.GITHUB, lower, body_of("github/push.json")).repo_id == "63933911"
    upper = {k.upper(): v for k, v in headers_for(Provider.GITLAB, "Push Hook").items()}
    assert parse_push(Provider.GITLAB, upper, body_of("gitlab/push-hook.json")).repo_id == "15"


def test_provider_given_as_string() -> None:
    parsed = parse_push("gitea", headers_for(Provider.GITEA, "push"), body_of("gitea/push.json"))
    assert parsed.provider is Provider.GITEA


def test_gogs_event_header_accepted_for_gitea() -> None:
    headers = {"X-Gogs-Event": "push", "X-Gogs-Delivery": GITEA_DELIVERY}
    parsed = parse_push(Provider.GITEA, headers, body_of("gitea/push.json"))
    assert (parsed.event, parsed.delivery_id, parsed.repo_full_name) == (
        "push",
        GITEA_DELIVERY,
        "example/example",
    )


# --------------------------------------------------------------------------- form-encoded bodies


def test_github_form_encoded_body() -> None:
    form = urlencode({"payload": (WEBHOOKS / "github/push.json").read_text(encoding="utf-8")}).encode()
    assert len(form) == 11807  # the form variant documented in HEADERS.md
    for content_type in (
        "application/x-www-form-urlencoded",
        "Application/X-WWW-Form-Urlencoded; charset=utf-8",
    ):
        parsed = parse_push(Provider.GITHUB, headers_for(Provider.GITHUB, "push", content_type), form)
        assert (parsed.repo_id, parsed.after) == ("63933911", "fd489864e7642b48eaad6e3f155c10e46810ec72")
    assert peek_repository(Provider.GITHUB, {"content-type": "application/x-www-form-urlencoded"}, form) == (
        "63933911",
        "binkkatal/sample_app",
    )
    # without the form content type the body is taken as JSON, and is not JSON
    with pytest.raises(WebhookPayloadError, match="JSON"):
        parse_webhook(Provider.GITHUB, headers_for(Provider.GITHUB, "push"), form)


def test_gitea_form_encoded_body() -> None:
    form = urlencode({"payload": (WEBHOOKS / "gitea/push.json").read_text(encoding="utf-8")}).encode()
    headers = headers_for(Provider.GITEA, "push", "application/x-www-form-urlencoded")
    assert parse_push(Provider.GITEA, headers, form).repo_full_name == "example/example"


@pytest.mark.parametrize(
    "form",
    [
        b"",
        b"payload",
        b"other=1",
        b"payload=1&payload=2",
        b"payload=%7B%7D&x",
        b"payload=%FF",
        "payload=é".encode(),
    ],
)
def test_malformed_form_bodies(form: bytes) -> None:
    headers = headers_for(Provider.GITHUB, "push", "application/x-www-form-urlencoded")
    with pytest.raises(WebhookPayloadError):
        parse_webhook(Provider.GITHUB, headers, form)


# --------------------------------------------------------------------------- ignored events


def test_github_ping_is_ignored() -> None:
    result = parse_webhook(Provider.GITHUB, headers_for(Provider.GITHUB, "ping"), body_of("github/ping.json"))
    assert isinstance(result, IgnoredEvent)
    assert (result.provider, result.event, result.delivery_id) == (Provider.GITHUB, "ping", DELIVERY)
    assert result.reason
    # the receiver can still find the secret for a ping
    assert peek_repository(Provider.GITHUB, {}, body_of("github/ping.json")) == (
        "186853261",
        "Octocoders/Hello-World",
    )


@pytest.mark.parametrize(
    ("provider", "event", "name"),
    [
        (Provider.GITHUB, "issues", "github/ping.json"),
        (Provider.GITHUB, "create", "github/push-create.json"),
        (Provider.GITLAB, "Note Hook", "gitlab/push-hook.json"),
        (Provider.GITLAB, "Merge Request Hook", "gitlab/push-hook.json"),
        (Provider.GITEA, "create", "gitea/push.json"),
        (Provider.GITEA, "issues", "gitea/push.json"),
    ],
)
def test_other_events_are_ignored(provider: Provider, event: str, name: str) -> None:
    result = parse_webhook(provider, headers_for(provider, event), body_of(name))
    assert isinstance(result, IgnoredEvent)
    assert result.event == event


@pytest.mark.parametrize("kind", ["project_create", "user_create", "repository_update", 7, None])
def test_non_push_system_hook_is_ignored(kind: object) -> None:
    data = json_of("gitlab/system-hook-push.json")
    data["event_name"] = kind
    body = json.dumps(data).encode()
    result = parse_webhook(Provider.GITLAB, headers_for(Provider.GITLAB, "System Hook"), body)
    assert isinstance(result, IgnoredEvent)
    assert "system hook" in result.reason


def test_system_hook_tag_push_is_a_push() -> None:
    data = json_of("gitlab/system-hook-push.json")
    data["event_name"] = "tag_push"
    parsed = parse_push(
        Provider.GITLAB, headers_for(Provider.GITLAB, "System Hook"), json.dumps(data).encode()
    )
    assert parsed.event == "System Hook" and parsed.repo_id == "15"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "body", [b"", b"{", b"not json", b"\xff\xfe{", b"[1, 2]", b'"push"', b"null", b"42", b"[" * 100_000]
)
def test_malformed_or_non_object_bodies(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError) as info:
        parse_webhook(Provider.GITHUB, headers_for(Provider.GITHUB, "push"), body)
    assert "JSON" in str(info.value)
    assert peek_repository(Provider.GITHUB, headers_for(Provider.GITHUB, "push"), body) is None


def test_ignored_events_still_need_a_json_object() -> None:
    with pytest.raises(WebhookPayloadError):
        parse_webhook(Provider.GITHUB, headers_for(Provider.GITHUB, "ping"), b"[]")


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("github/push.json", ("repository",)),
        ("github/push.json", ("repository", "id")),
        ("github/push.json", ("repository", "full_name")),
        ("github/push.json", ("ref",)),
        ("github/push.json", ("before",)),
        ("github/push.json", ("after",)),
        ("gitea/push.json", ("repository",)),
        ("gitlab/push-hook.json", ("project",)),
        ("gitlab/push-hook.json", ("project", "path_with_namespace")),
        ("gitlab/push-hook.json", ("project_id",)),  # this file has no project.id either
        ("gitlab/system-hook-push.json", ("after",)),
    ],
)
def test_missing_fields(name: str, path: tuple[str, ...]) -> None:
    provider, event = PUSH_FILES[name]
    data = json_of(name)
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(WebhookPayloadError) as info:
        parse_webhook(provider, headers_for(provider, event), json.dumps(data).encode())
    assert path[0] in str(info.value)


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("github/push.json", ("repository", "id"), "63933911"),  # ids are JSON numbers
        ("github/push.json", ("repository", "id"), True),
        ("github/push.json", ("repository", "full_name"), ""),
        ("github/push.json", ("repository",), None),
        ("github/push.json", ("ref",), "master"),
        ("github/push.json", ("ref",), "refs/heads/a b"),
        ("github/push.json", ("ref",), "refs/heads/a\nb"),
        ("github/push.json", ("after",), "FD489864E7642B48EAAD6E3F155C10E46810EC72"),
        ("github/push.json", ("after",), "fd48986"),
        ("github/push.json", ("after",), 0),
        ("github/push-create.json", ("after",), ZERO),  # zeros on both sides
        ("gitlab/push-hook.json", ("project_id",), "15"),
        ("gitlab/push-hook.json", ("project", "id"), 16),  # disagrees with project_id 15
    ],
)
def test_invalid_field_values(name: str, path: tuple[str, ...], value: object) -> None:
    provider, event = PUSH_FILES[name]
    data = json_of(name)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(WebhookPayloadError):
        parse_webhook(provider, headers_for(provider, event), json.dumps(data).encode())


def test_gitlab_project_id_from_project_object() -> None:
    # Newer GitLab sends project.id as well; it is used when project_id is absent.
    data = json_of("gitlab/push-hook.json")
    del data["project_id"]
    data["project"]["id"] = 15
    parsed = parse_push(Provider.GITLAB, headers_for(Provider.GITLAB, "Push Hook"), json.dumps(data).encode())
    assert parsed.repo_id == "15"


@pytest.mark.parametrize(
    ("event", "name"),
    [("Push Hook", "gitlab/tag-push-hook.json"), ("Tag Push Hook", "gitlab/push-hook.json")],
)
def test_gitlab_payload_not_matching_event(event: str, name: str) -> None:
    with pytest.raises(WebhookPayloadError, match="does not match"):
        parse_webhook(Provider.GITLAB, headers_for(Provider.GITLAB, event), body_of(name))


def test_github_non_push_payload_sent_as_push() -> None:
    with pytest.raises(WebhookPayloadError, match="ref"):
        parse_webhook(Provider.GITHUB, headers_for(Provider.GITHUB, "push"), body_of("github/ping.json"))


@pytest.mark.parametrize("provider", list(Provider))
def test_missing_event_header(provider: Provider) -> None:
    name = next(n for n, (p, _) in PUSH_FILES.items() if p is provider)
    with pytest.raises(WebhookPayloadError, match="event header"):
        parse_webhook(provider, headers_for(provider, None), body_of(name))
    with pytest.raises(WebhookPayloadError, match="event header"):
        parse_webhook(provider, headers_for(provider, "  "), body_of(name))


@pytest.mark.parametrize(
    ("provider", "event"),
    [(Provider.GITHUB, "push"), (Provider.GITLAB, "Push Hook"), (Provider.GITEA, "push")],
)
def test_missing_delivery_id(provider: Provider, event: str) -> None:
    name = next(n for n, (p, e) in PUSH_FILES.items() if p is provider and e == event)
    headers = {
        k: v
        for k, v in headers_for(provider, event).items()
        if "Delivery" not in k and "UUID" not in k and k != "Idempotency-Key"
    }
    with pytest.raises(WebhookPayloadError, match="delivery id"):
        parse_webhook(provider, headers, body_of(name))


def test_error_messages_do_not_echo_the_body() -> None:
    data = json_of("github/push.json")
    data["ref"] = "<script>secret-ref</script>"
    with pytest.raises(WebhookPayloadError) as info:
        parse_webhook(Provider.GITHUB, headers_for(Provider.GITHUB, "push"), json.dumps(data).encode())
    assert "secret-ref" not in str(info.value)
    data = json_of("gitlab/system-hook-push.json")
    data["event_name"] = "<script>"
    result = parse_webhook(
        Provider.GITLAB, headers_for(Provider.GITLAB, "System Hook"), json.dumps(data).encode()
    )
    assert isinstance(result, IgnoredEvent) and "<script>" not in result.reason


# --------------------------------------------------------------------------- headers helpers


def test_delivery_id_precedence() -> None:
    assert delivery_id(Provider.GITHUB, {"x-github-delivery": DELIVERY}) == DELIVERY
    assert delivery_id(Provider.GITHUB, {"X-Gitea-Delivery": DELIVERY}) is None
    gl = {"Idempotency-Key": "a", "X-Gitlab-Event-UUID": "b", "webhook-id": "c"}
    assert delivery_id(Provider.GITLAB, gl) == "a"
    del gl["Idempotency-Key"]
    assert delivery_id(Provider.GITLAB, gl) == "b"
    del gl["X-Gitlab-Event-UUID"]
    assert delivery_id(Provider.GITLAB, gl) == "c"
    assert delivery_id(
        Provider.GITLAB, {"Idempotency-Key": "", "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek"}
    ) == ("msg_p5jXN8AQM9LWM0D4loKWxJek")
    assert delivery_id(Provider.GITEA, {"X-Gitea-Delivery": GITEA_DELIVERY}) == GITEA_DELIVERY
    assert delivery_id(Provider.GITEA, {"X-Gogs-Delivery": GITEA_DELIVERY}) == GITEA_DELIVERY
    assert delivery_id(Provider.GITEA, {}) is None


@pytest.mark.parametrize("value", ["a b", "x" * 129, "../etc", "a\nb", "é", ""])
def test_implausible_delivery_ids_rejected(value: str) -> None:
    assert delivery_id(Provider.GITHUB, {"X-GitHub-Delivery": value}) is None


def test_event_name_headers() -> None:
    assert event_name(Provider.GITHUB, {"x-github-event": " push "}) == "push"
    assert event_name(Provider.GITLAB, {"X-Gitlab-Event": "System Hook"}) == "System Hook"
    assert event_name(Provider.GITEA, {"X-Gogs-Event": "push"}) == "push"
    assert event_name(Provider.GITEA, {"X-GitHub-Event": "push"}) is None


def test_peek_repository_never_raises() -> None:
    assert peek_repository(Provider.GITLAB, {}, body_of("github/push.json")) is None
    assert peek_repository(Provider.GITHUB, {}, body_of("gitlab/push-hook.json")) is None
    assert peek_repository("bogus", {}, body_of("github/push.json")) is None
    assert (
        peek_repository(Provider.GITHUB, {"Content-Type": "application/x-www-form-urlencoded"}, b"%%%")
        is None
    )
    assert peek_repository(Provider.GITEA, {}, b'{"repository": {"id": 1}}') is None
    assert peek_repository(Provider.GITLAB, {}, body_of("gitlab/system-hook-push.json")) == (
        "15",
        "mike/diaspora",
    )


def test_push_event_is_immutable_and_serialisable() -> None:
    parsed = parse_push(
        Provider.GITHUB, headers_for(Provider.GITHUB, "push"), body_of("github/push-tag.json")
    )
    with pytest.raises(ValueError):
        parsed.ref = "refs/heads/x"
    dumped = parsed.model_dump(mode="json")
    assert dumped["provider"] == "github" and dumped["repo_id"] == "13933572"
    assert PushEvent.model_validate(dumped) == parsed
