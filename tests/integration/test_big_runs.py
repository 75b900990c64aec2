"""Runs of any ref count are recorded: moto enforces DynamoDB's 400 KB item limit, as AWS does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.jobs import make_job
from gitmirror.run.records_size import DIVERGENT_CAP, INLINE_REFS_CAP
from gitmirror.values import Action, Trigger
from gitmirror_dev.lambdas import QueuePoller, load_function
from tests.conftest import AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.service import add_mirror, store

CREATED, DIVERGENT = 10_000, 5_000
ITEM_LIMIT = 400 * 1024
GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))


def _set_refs(repo: Path, names: list[str], sha: str) -> None:
    """Thousands of refs at once, as `git pack-refs` would store them (loose refs take ~1 ms each)."""
    lines = "".join(f"{sha} {n}\n" for n in sorted(names))
    (repo / "packed-refs").write_text(f"# pack-refs with: peeled fully-peeled sorted \n{lines}")


def test_10000_created_and_5000_divergent_refs_are_recorded(aws: AwsEnv, git_servers: GitServers) -> None:
    src, dst = git_servers.source_path, git_servers.target_path
    tip = g.commit(src, "refs/heads/main", {"a": "1"})
    created = [f"refs/heads/c/{i:05d}" for i in range(CREATED)]
    divergent = [f"refs/heads/d/{i:05d}" for i in range(DIVERGENT)]
    _set_refs(src, created + divergent, tip)
    other = g.commit(dst, None, {"b": "2"}, parents=[])  # the target's own history: never in the source
    _set_refs(dst, divergent, other)

    mirror = add_mirror(aws, git_servers.source_url, git_servers.target_url, keep_divergent_refs=True)
    SqsJobQueue(aws.queue_url).enqueue(make_job(mirror.id, Trigger.MANUAL, None))
    assert QueuePoller(load_function("worker"), aws.queue_url).drain() == 1
    assert aws.queue_messages() == [] and aws.queue_messages(aws.dlq_url) == []

    # the status item: exact counts, the divergent list capped at GitLab's 100 with the rest counted
    after = store().get(mirror.id)
    assert after is not None and after.last_run_id
    assert after.refs_created == CREATED + 1 and after.refs_skipped == DIVERGENT
    assert after.divergent_refs == divergent[:DIVERGENT_CAP]
    assert after.divergent_refs_truncated == DIVERGENT - DIVERGENT_CAP
    raw = store().raw(mirror.id)
    assert raw is not None and len(json.dumps(raw)) < ITEM_LIMIT

    # the run item: capped lists, exact counts, and every per-ref result retrievable
    [run] = store().list_runs(mirror.id)
    assert run.run_id == after.last_run_id
    assert run.refs_created == CREATED + 1 and run.refs_skipped == DIVERGENT
    assert (
        len(run.refs) == INLINE_REFS_CAP and run.refs_truncated == CREATED + 1 + DIVERGENT - INLINE_REFS_CAP
    )
    assert run.divergent_refs_truncated == DIVERGENT - DIVERGENT_CAP and run.refs_pages > 1
    assert len(json.dumps(run.model_dump(mode="json"))) < ITEM_LIMIT
    every = store().run_refs(run)
    assert len(every) == CREATED + 1 + DIVERGENT
    assert {r.ref for r in every if r.action == Action.CREATE} == set(created) | {"refs/heads/main"}
    assert sorted(r.ref for r in every if r.action == Action.SKIP_DIVERGENT) == divergent
    assert every[: len(run.refs)] == run.refs

    # the CLI prints every one of them for one run
    proc = subprocess.run(
        [GITMIRROR, "runs", mirror.id, "--run", run.run_id, "--json"],
        env=dict(os.environ, **aws.env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    [shown] = json.loads(proc.stdout)["runs"]
    assert (
        len(shown["refs"]) == len(every)
        and shown["refs_truncated"] == 0
        and shown["refs_created"] == CREATED + 1
    )
    missing = subprocess.run(
        [GITMIRROR, "runs", mirror.id, "--run", "nope"],
        env=dict(os.environ, **aws.env),
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "no run nope" in missing.stderr

    # and the target really has them
    refs = g.refs(dst)
    assert all(refs[n] == tip for n in created) and all(refs[n] == other for n in divergent)
