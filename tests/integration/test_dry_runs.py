"""Dry runs through the service: the API and the CLI queue one, the worker records its plan and leaves
the mirror's status fields (and the target) untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from gitmirror.values import Trigger
from gitmirror_dev.lambdas import QueuePoller, http_event, invoke_http, load_function, parse_json
from tests.conftest import CANARIES, AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.eventbus import event_tap
from tests.support.service import add_mirror, all_items, store

GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))
CALLER = "arn:aws:iam::123456789012:user/mirror-admin"
MAIN = "refs/heads/main"
STATUS_FIELDS = (
    "update_status",
    "result",
    "last_update_at",
    "last_update_started_at",
    "last_successful_update_at",
    "last_error",
    "divergent_refs",
    "refs_created",
    "refs_updated",
    "refs_deleted",
    "refs_rejected",
    "refs_skipped",
    "last_run_id",
    "last_scheduled_at",
)


def api_call(method: str, path: str) -> tuple[int, Any]:
    status, _headers, out = invoke_http(
        load_function("api"), http_event(method, path, {}, b"", iam_user_arn=CALLER)
    )
    return status, parse_json(out) if out else None


def status_of(mirror_id: str) -> dict[str, Any]:
    [item] = [i for i in all_items_of_mirrors() if i["id"] == mirror_id]
    return {k: item.get(k) for k in STATUS_FIELDS}


def all_items_of_mirrors() -> list[dict[str, Any]]:
    from gitmirror.settings import CliSettings, load

    return all_items(load(CliSettings).mirrors_table)


def seed(servers: GitServers) -> None:
    base = g.commit(servers.source_path, MAIN, {"a": "1"})
    g.commit(servers.source_path, "refs/heads/topic", {"t": "1"}, parents=[base])
    g.tag(servers.source_path, "v1", base, annotated=True)


def test_the_api_queues_a_dry_run_whose_record_holds_the_plan(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    before = status_of(mirror.id)

    status, reply = api_call("POST", f"/mirrors/{mirror.id}/sync?dry_run=true")
    assert status == 202, reply
    assert reply == {"mirror": mirror.id, "queued": True, "reason": "queued", "dry_run": True}
    [message] = aws.queue_messages()
    job = json.loads(str(message["Body"]))
    assert job["dry_run"] is True and job["trigger"] == Trigger.MANUAL.value
    assert status_of(mirror.id) == before  # not even `scheduled`

    with event_tap([mirror.id]) as tap:
        assert QueuePoller(load_function("worker"), aws.queue_url).drain() == 1
        assert tap.events() == []  # a dry run changes no state: nothing to notify
    assert status_of(mirror.id) == before
    assert g.refs(git_servers.target_path) == {}
    [run] = store().list_runs(mirror.id)
    assert run.dry_run is True and run.result == "success"
    assert {r.ref: r.action.value for r in run.refs} == {
        MAIN: "create",
        "refs/heads/topic": "create",
        "refs/tags/v1": "create",
    }
    assert run.bytes_sent == 0 or git_servers.target.rpc_requests("git-receive-pack") == []
    assert git_servers.target.rpc_requests("git-receive-pack") == []

    # a real run afterwards mirrors exactly that plan
    assert api_call("POST", f"/mirrors/{mirror.id}/sync")[0] == 202
    QueuePoller(load_function("worker"), aws.queue_url).drain()
    real = store().get(mirror.id)
    assert real is not None and real.update_status == "finished"
    assert {k: v for k, v in g.refs(git_servers.target_path).items() if k.startswith("refs/")} == {
        k: v for k, v in g.refs(git_servers.source_path).items() if k.startswith("refs/")
    }


def test_a_dry_run_is_queued_even_while_a_run_is_pending(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    assert api_call("POST", f"/mirrors/{mirror.id}/sync")[0] == 202
    before = status_of(mirror.id)
    status, reply = api_call("POST", f"/mirrors/{mirror.id}/sync?dry_run=true")
    assert (status, reply["queued"], reply["dry_run"]) == (202, True, True)
    assert status_of(mirror.id) == before
    assert len(aws.queue_messages()) == 2


def test_a_dry_run_that_cannot_push_fails_in_its_record_only(aws: AwsEnv, git_servers: GitServers) -> None:
    seed(git_servers)
    mirror = add_mirror(
        aws,
        git_servers.source_url,
        git_servers.target_url,
        target_secret_value={"username": "dst-user", "token": "canary-wrong-token-42"},
    )
    before = status_of(mirror.id)
    assert api_call("POST", f"/mirrors/{mirror.id}/sync?dry_run=true")[0] == 202
    QueuePoller(load_function("worker"), aws.queue_url).drain()
    [run] = store().list_runs(mirror.id)
    assert (run.dry_run, run.result, run.reason_code) == (True, "failed", "auth")
    assert run.error and "401" in run.error and run.error.rstrip().endswith(run.hint or "?")
    assert status_of(mirror.id) == before
    assert aws.queue_messages() == [] and aws.queue_messages(aws.dlq_url) == []


def test_bad_dry_run_values_are_400(aws: AwsEnv, git_servers: GitServers) -> None:
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    before = status_of(mirror.id)
    status, reply = api_call("POST", f"/mirrors/{mirror.id}/sync?dry_run=maybe")
    assert status == 400 and "dry_run" in reply["error"]
    assert aws.queue_messages() == [] and status_of(mirror.id) == before


def test_the_cli_queues_a_dry_run(aws: AwsEnv, git_servers: GitServers) -> None:
    import os

    seed(git_servers)
    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url)
    before = status_of(mirror.id)
    env = dict(os.environ)
    proc = subprocess.run(
        [GITMIRROR, "mirrors", "sync", mirror.id, "--dry-run", "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "mirror": mirror.id,
        "queued": True,
        "reason": "queued",
        "dry_run": True,
    }
    assert status_of(mirror.id) == before
    QueuePoller(load_function("worker"), aws.queue_url).drain()
    proc = subprocess.run(
        [GITMIRROR, "runs", mirror.id, "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    [run] = json.loads(proc.stdout)["runs"]
    assert run["dry_run"] is True and {r["action"] for r in run["refs"]} == {"create"}
    for canary in CANARIES:
        assert canary not in proc.stdout
    table = subprocess.run(
        [GITMIRROR, "runs", mirror.id], env=env, capture_output=True, text=True, timeout=60
    )
    assert table.returncode == 0 and "manual (dry run)" in table.stdout
    human = subprocess.run(
        [GITMIRROR, "mirrors", "sync", mirror.id, "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert human.returncode == 0 and "dry run" in human.stdout
    assert status_of(mirror.id) == before
