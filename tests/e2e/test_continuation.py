"""A first mirror larger than one run can push, on the local stack: the worker's continuation chain.

The target enforces `receive.maxInputSize`; every push is slowed down so a run (a short Lambda
timeout) has time for a few pushes only. The chain must go incomplete -> scheduled -> continuation
until finished, with no second chain started by "Update now" or the scheduler meanwhile.
"""

from __future__ import annotations

import itertools
import random

from gitmirror.adapters.aws.queue import SqsJobQueue
from gitmirror.manage.mirrors import request_sync, schedule_all
from gitmirror.values import RunStatus, Trigger, UpdateStatus
from gitmirror_dev.stack import local_stack
from tests.support import gitrepo as g

CAP = 100 * 1024
LIMIT = 90 * 1024
# 60 s of Lambda time: 30 s are kept to record the result, 20 s are the engine's deadline margin, and
# new pushes may start during three quarters of the rest (7.5 s); each push takes >= 2 s here.
LAMBDA_SECONDS = 60.0
PUSH_SECONDS = 2.0


def test_the_worker_continues_until_the_mirror_is_complete() -> None:
    # its own resource names: moto's state outlives the stack within this process (tests/e2e/test_load.py)
    with local_stack(sample="generated", prefix="gitmirror-chain") as stack:
        rng = random.Random(11)
        for i in range(14):
            g.commit(stack.upstream, "refs/heads/main", {f"data/{i}.bin": rng.randbytes(30_000)})
        g.git(stack.downstream, "config", "receive.maxInputSize", str(CAP))
        stack.target.stall_seconds = PUSH_SECONDS
        stack.target.stall_path_contains = "/git-receive-pack"  # the push POSTs (and their listing)
        stack.poller.timeout_seconds = LAMBDA_SECONDS
        mirror = stack.register_mirror()
        stack.store.update_settings(mirror.id, {"max_push_bytes": LIMIT})
        queue = SqsJobQueue(stack.settings.queue_url)
        assert request_sync(mirror.id, stack.store, queue, Trigger.MANUAL).queued

        progress: list[tuple[int, int, int]] = []
        for _ in range(15):
            assert stack.poller.poll_once() == 1, "the chain stopped without a job queued"
            now = stack.store.get(mirror.id)
            assert now is not None
            if now.update_status == UpdateStatus.FINISHED:
                break
            assert now.update_status == UpdateStatus.SCHEDULED, now.last_error
            assert now.result == RunStatus.INCOMPLETE and now.last_error is None
            assert now.remaining_refs and now.remaining_refs > 0
            progress.append((now.runs_so_far, now.bytes_pushed, now.remaining_refs))
            # one chain at a time: "Update now" and the scheduler see the pending continuation
            again = request_sync(mirror.id, stack.store, queue, Trigger.MANUAL)
            assert not again.queued and "scheduled" in again.reason
            queued, _ = schedule_all(stack.store, queue)
            assert mirror.id not in queued
        else:
            raise AssertionError(f"not finished after 15 runs: {progress}")

        assert len(progress) >= 2, "the history should have needed several runs"
        runs_so_far = [p[0] for p in progress]
        assert runs_so_far == list(range(1, len(progress) + 1))
        assert all(a[1] < b[1] for a, b in itertools.pairwise(progress))  # bytes grow
        final = stack.store.get(mirror.id)
        assert final is not None and final.result == RunStatus.SUCCESS and final.remaining_refs == 0
        assert final.runs_so_far == len(progress) + 1 and final.bytes_pushed > progress[-1][1]
        assert g.refs(stack.downstream) == {
            ref: sha
            for ref, sha in g.refs(stack.upstream).items()
            if ref.startswith(("refs/heads/", "refs/tags/"))
        }
        runs = stack.store.list_runs(mirror.id, limit=50)[::-1]
        assert [r.trigger for r in runs] == [Trigger.MANUAL] + [Trigger.CONTINUATION] * (len(runs) - 1)
        assert [r.result for r in runs[:-1]] == [RunStatus.INCOMPLETE] * (len(runs) - 1)
        assert runs[-1].result == RunStatus.SUCCESS and runs[-1].update_status == UpdateStatus.FINISHED
        assert all(r.bytes_pushed > 0 for r in runs)
        assert stack.poller.poll_once() == 0  # nothing left queued
