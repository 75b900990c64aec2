"""The sample events in events/: up to date with the generator, and each accepted by its handler on moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gitmirror.values import UpdateStatus
from gitmirror_cli import main as cli
from gitmirror_dev.events import EVENTS, MIRROR_ID, WEBHOOK_FILES, delivery_ids, generate
from gitmirror_dev.lambdas import invoke
from tests.conftest import REPO_ROOT, AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.service import WEBHOOK_SECRET, WEBHOOKS, add_mirror, store

EVENTS_DIR = REPO_ROOT / "events"
SRC = "http://127.0.0.1:1/src.git"  # never contacted: the receiver and the scheduler do no git work
DST = "http://127.0.0.1:1/dst.git"


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return event


def http(function: str, name: str) -> tuple[int, Any]:
    response = invoke(function, EVENTS_DIR / name)
    return int(response["statusCode"]), json.loads(response.get("body") or "null")


def status_of(mirror_id: str) -> UpdateStatus:
    mirror = store().get(mirror_id)
    assert mirror is not None
    return mirror.update_status


# --------------------------------------------------------------------------- the files themselves


def test_committed_events_are_exactly_what_the_generator_writes(tmp_path: Path) -> None:
    written = generate(WEBHOOK_SECRET, tmp_path / "events", webhooks=WEBHOOKS)
    assert [p.name for p in written] == [spec.name for spec in EVENTS]
    committed = sorted(p.name for p in EVENTS_DIR.glob("*.json"))
    assert committed == sorted(p.name for p in written), "events/ has missing or extra files"
    stale = [p.name for p in written if p.read_bytes() != (EVENTS_DIR / p.name).read_bytes()]
    assert stale == [], f"regenerate with: gitmirror events --secret {WEBHOOK_SECRET}"
    # a second run is byte-identical (no clock, no randomness)
    again = generate(WEBHOOK_SECRET, tmp_path / "again", webhooks=WEBHOOKS)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written]


def test_webhook_bodies_are_the_real_payloads_byte_for_byte() -> None:
    for source, event_name in WEBHOOK_FILES.items():
        event = load(event_name)
        assert event["isBase64Encoded"] is False
        assert event["body"].encode("utf-8") == (WEBHOOKS / source).read_bytes(), event_name


def test_form_encoded_push_matches_the_published_vector() -> None:
    # tests/fixtures/webhooks/HEADERS.md: the form-encoded github/push.json and its signature
    event = load("webhook-github-push-form.json")
    assert len(event["body"]) == 11807
    assert event["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert event["headers"]["x-hub-signature-256"] == (
        "sha256=3017d96430e445befae3287cd3cbcf6546735b6788b44ef5308b37a123c13e2d"
    )


def test_cli_writes_the_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["events", "--secret", "another-secret", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).name for p in printed] == [spec.name for spec in EVENTS]
    push = json.loads((tmp_path / "webhook-github-push.json").read_text())
    assert (
        push["headers"]["x-hub-signature-256"]
        != load("webhook-github-push.json")["headers"]["x-hub-signature-256"]
    )
    assert "another-secret" not in (tmp_path / "webhook-github-push.json").read_text()


def test_cli_refuses_an_empty_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["events", "--secret", "", "--out", str(tmp_path)]) == 2
    assert "secret" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- webhook function

# event file -> (provider, repository id, full name) of the mirror to register, expected status
WEBHOOK_CASES = [
    ("webhook-github-push.json", ("github", "63933911", "binkkatal/sample_app"), 202),
    ("webhook-github-push-form.json", ("github", "63933911", "binkkatal/sample_app"), 202),
    ("webhook-github-ping.json", ("github", "186853261", "Octocoders/Hello-World"), 200),
    ("webhook-github-bad-signature.json", ("github", "63933911", "binkkatal/sample_app"), 401),
    ("webhook-gitlab-push.json", ("gitlab", "15", "mike/diaspora"), 202),
    ("webhook-gitlab-tag-push.json", ("gitlab", "1", "jsmith/example"), 202),
    ("webhook-gitlab-system-hook.json", ("gitlab", "15", "mike/diaspora"), 202),
    ("webhook-gitea-push.json", ("gitea", "1", "example/example"), 202),
]


def test_every_webhook_event_has_a_case() -> None:
    assert sorted(c[0] for c in WEBHOOK_CASES) == sorted(
        s.name for s in EVENTS if s.name.startswith("webhook-")
    )


@pytest.mark.parametrize(("name", "repository", "status"), WEBHOOK_CASES, ids=[c[0] for c in WEBHOOK_CASES])
def test_webhook_event_is_handled(
    aws: AwsEnv, name: str, repository: tuple[str, str, str], status: int
) -> None:
    provider, repo_id, full_name = repository
    mirror = add_mirror(aws, SRC, DST, provider=provider, repo_id=repo_id, full_name=full_name)
    got, reply = http("webhook", name)
    assert got == status, reply
    messages = aws.queue_messages()
    if status == 202:
        assert reply["mirrors"] == [mirror.id] and reply["queued"] == 1
        assert len(messages) == 1
        job = json.loads(str(messages[0]["Body"]))
        assert job["mirror_id"] == mirror.id and job["trigger"] == "webhook"
        assert job["delivery_id"] == reply["delivery"] and reply["delivery"] in delivery_ids().values()
        assert status_of(mirror.id) == UpdateStatus.SCHEDULED
    else:
        assert messages == []
        assert status_of(mirror.id) == UpdateStatus.NONE
    if status == 200:
        assert "ignored" in reply
    if status == 401:
        assert reply == {"error": "invalid signature"}


# --------------------------------------------------------------------------- api function


def test_api_events_in_order(aws: AwsEnv) -> None:
    named = json.loads(load("api-create-mirror.json")["body"])
    for field in ("source_secret", "target_secret", "webhook_secret"):  # POST /mirrors checks they exist
        if named.get(field):
            aws.put_secret(named[field], json.dumps({"username": "u", "token": "t-0123456789"}))
    status, created = http("api", "api-create-mirror.json")
    assert status == 201, created
    assert created["id"] == MIRROR_ID and created["source_repo_id"] == "63933911"
    assert created["source_full_name"] == "binkkatal/sample_app" and created["update_status"] == "none"
    assert json.loads(load("api-create-mirror.json")["body"])["target_secret"].startswith("gitmirror/")

    status, listed = http("api", "api-list-mirrors.json")
    assert status == 200 and [m["id"] for m in listed["mirrors"]] == [MIRROR_ID]

    status, got = http("api", "api-get-mirror.json")
    assert status == 200 and got["id"] == MIRROR_ID and got["url"] == created["url"]

    status, synced = http("api", "api-sync-mirror.json")
    assert status == 202 and synced == {"mirror": MIRROR_ID, "queued": True, "reason": "queued"}
    messages = aws.queue_messages()
    assert len(messages) == 1 and json.loads(str(messages[0]["Body"]))["trigger"] == "manual"

    status, runs = http("api", "api-get-runs.json")
    assert status == 200 and runs == {"runs": []}


def test_api_events_carry_the_iam_authorizer() -> None:
    for spec in EVENTS:
        if spec.name.startswith("api-"):
            iam = load(spec.name)["requestContext"]["authorizer"]["iam"]
            assert iam["userArn"].startswith("arn:aws:iam::") and iam["accountId"] and iam["accessKey"]


# --------------------------------------------------------------------------- worker and scheduler


def test_worker_event_runs_the_job(aws: AwsEnv, git_servers: GitServers) -> None:
    src = git_servers.source_path
    base = g.commit(src, "refs/heads/main", {"README": "events"})
    g.tag(src, "v1", base, annotated=True)
    event = load("worker-sqs-job.json")
    job = json.loads(event["Records"][0]["body"])
    assert event["Records"][0]["attributes"]["MessageGroupId"] == job["mirror_id"] == MIRROR_ID
    add_mirror(aws, git_servers.source_url, git_servers.target_url, mirror_id=MIRROR_ID)

    response = invoke("worker", EVENTS_DIR / "worker-sqs-job.json")

    assert response == {"batchItemFailures": []}
    mirror = store().get(MIRROR_ID)
    assert mirror is not None
    assert mirror.update_status == UpdateStatus.FINISHED and mirror.result == "success"
    assert g.refs(git_servers.target_path) == g.refs(src)
    runs = store().list_runs(MIRROR_ID)
    assert len(runs) == 1 and runs[0].delivery_id == job["delivery_id"] == delivery_ids()["github-push"]


def test_scheduler_tick_queues_every_mirror(aws: AwsEnv) -> None:
    first = add_mirror(aws, SRC, DST, mirror_id="events-first")
    second = add_mirror(aws, SRC, DST, repo_id="1", full_name=None, mirror_id="events-second")
    result = invoke("scheduler", EVENTS_DIR / "scheduler-tick.json")
    assert sorted(result["queued"]) == sorted([first.id, second.id]) and result["skipped"] == []
    assert len(aws.queue_messages()) == 2
