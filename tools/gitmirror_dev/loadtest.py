"""Load and concurrency on the local stack: concurrent signed webhooks through `gitmirror serve`, a
pool of local workers on the queue, then proofs (no overlapping runs, every target converged,
duplicates dropped) and figures (accepted requests per second, webhook-to-target latency)."""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gitmirror.manage.mirrors import create_mirror
from gitmirror.records import MirrorSpec
from gitmirror.values import Provider, parse_iso
from gitmirror_dev import samples
from gitmirror_dev.lambdas import QueuePoller, load_function
from gitmirror_dev.moto_stack import put_secret
from gitmirror_dev.signing import sign_github
from gitmirror_dev.stack import SOURCE_USER, TARGET_USER, WEBHOOK_SECRET, Stack


@dataclass
class LoadReport:
    mirrors: int
    webhooks_sent: int
    accepted: int
    duplicates: int
    rejected: int
    accept_seconds: float
    accepted_per_second: float
    runs: int
    overlapping_runs: int
    converged: int
    latency_p50_seconds: float
    latency_max_seconds: float
    workers: int
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def payload_for(repo_id: int, name: str) -> bytes:
    """The real GitHub push payload, re-addressed to another repository (same shape, other ids), as
    one more push (its own `after`)."""
    return samples.distinct_github_push(str(uuid.uuid4()), repo_id, name)


def _post(url: str, body: bytes, delivery: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(  # noqa: S310 - loopback http
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign_github(body, WEBHOOK_SECRET),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - loopback http
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def run_load(
    stack: Stack, *, mirrors: int = 10, burst: int = 50, per_mirror: int = 5, workers: int = 4
) -> LoadReport:
    names = {k: f"gitmirror/load/{k}" for k in ("source", "target", "webhook")}
    put_secret(names["source"], json.dumps({"username": SOURCE_USER, "token": stack.source_token}))
    put_secret(names["target"], json.dumps({"username": TARGET_USER, "token": stack.target_token}))
    put_secret(names["webhook"], WEBHOOK_SECRET)
    ids: list[str] = []
    for i in range(mirrors):
        up = stack.source.create_bare(f"load{i}.git")
        stack.target.create_bare(f"load{i}-mirror.git")
        samples.generated_history(up)
        spec = MirrorSpec(
            id=f"load-{i}",
            source_url=stack.source.repo_url(f"load{i}.git"),
            url=stack.target.repo_url(f"load{i}-mirror.git"),
            provider=Provider.GITHUB,
            source_repo_id=str(5000 + i),
            source_secret=names["source"],
            target_secret=names["target"],
            webhook_secret=names["webhook"],
        )
        ids.append(create_mirror(spec, stack.store, stack.settings.policy, stack.settings.secrets_prefix).id)

    # workers start first: runs happen while webhooks keep arriving
    stop = threading.Event()
    pollers = [QueuePoller(load_function("worker"), stack.settings.queue_url) for _ in range(workers)]

    def work(poller: QueuePoller) -> None:
        while not stop.is_set():
            if poller.poll_once(wait_seconds=0) == 0:
                time.sleep(0.05)

    threads = [threading.Thread(target=work, args=(p,), daemon=True) for p in pollers]
    for thread in threads:
        thread.start()

    try:
        url = f"{stack.api_url}/webhooks/github"
        sent: list[tuple[int, str, bytes, float]] = []  # (mirror index, delivery, body, time)
        # 50 concurrent pushes for one mirror (with upstream commits landing meanwhile), then bursts over all
        for _n in range(burst):
            sent.append((0, str(uuid.uuid4()), payload_for(5000, "load/repo0"), 0.0))
        for i in range(mirrors):
            for _n in range(per_mirror):
                sent.append((i, str(uuid.uuid4()), payload_for(5000 + i, f"load/repo{i}"), 0.0))
        last_sent: dict[int, float] = {}
        statuses: list[int] = []
        lock = threading.Lock()
        upstream_lock = threading.Lock()  # one upstream push at a time, like a real host's ref update

        def send(item: tuple[int, str, bytes, float]) -> None:
            index, delivery, body, _t = item
            if index == 0 and delivery.endswith(("0", "8")):
                with upstream_lock:
                    samples.commit(
                        Path(stack.source.repo_path("load0.git")), "main", "load.txt", delivery, "during load"
                    )
            status = _post(url, body, delivery)
            with lock:
                statuses.append(status)
                last_sent[index] = time.time()

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(send, sent))
            accept_seconds = time.monotonic() - started
            # redeliveries of ten deliveries: dropped as duplicates
            duplicates = list(pool.map(lambda item: _post(url, item[2], item[1]), sent[:10]))

        deadline = time.monotonic() + 300
        converged: set[int] = set()
        converged_at: dict[int, float] = {}
        while time.monotonic() < deadline and len(converged) < mirrors:
            for i in range(mirrors):
                if i in converged:
                    continue
                if _refs(stack.source.repo_path(f"load{i}.git")) == _refs(
                    stack.target.repo_path(f"load{i}-mirror.git")
                ):
                    converged.add(i)
                    converged_at[i] = time.time()
            time.sleep(0.1)
        # let queued leftovers (jobs covered by later runs) drain, then stop the pool
        idle_deadline = time.monotonic() + 60
        while time.monotonic() < idle_deadline and _queue_depth(stack) > 0:
            time.sleep(0.2)
    finally:
        # the workers stop even when sending fails: none outlives the stack
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    runs = {mid: stack.store.list_runs(mid, limit=1000) for mid in ids}
    overlapping = 0
    for records in runs.values():
        spans = sorted((parse_iso(r.started_at), parse_iso(r.finished_at or r.started_at)) for r in records)
        overlapping += sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])
    latencies = [max(0.0, converged_at[i] - last_sent[i]) for i in converged if i in last_sent]
    errors = [f"mirror load-{i} did not converge" for i in range(mirrors) if i not in converged]
    if _queue_depth(stack) > 0:
        errors.append("jobs left on the queue")
    accepted = statuses.count(202)
    return LoadReport(
        mirrors=mirrors,
        webhooks_sent=len(sent),
        accepted=accepted,
        duplicates=sum(1 for s in duplicates if s == 200),
        rejected=len(statuses) - accepted,
        accept_seconds=round(accept_seconds, 3),
        accepted_per_second=round(accepted / accept_seconds, 1) if accept_seconds else 0.0,
        runs=sum(len(r) for r in runs.values()),
        overlapping_runs=overlapping,
        converged=len(converged),
        latency_p50_seconds=round(statistics.median(latencies), 3) if latencies else -1.0,
        latency_max_seconds=round(max(latencies), 3) if latencies else -1.0,
        workers=workers,
        errors=errors,
    )


def _refs(repo: Path) -> dict[str, str]:
    out = samples.git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def _queue_depth(stack: Stack) -> int:
    import boto3

    attrs = boto3.client("sqs").get_queue_attributes(
        QueueUrl=stack.settings.queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def main() -> int:
    from gitmirror_dev.stack import local_stack

    with local_stack(sample="generated") as stack:
        report = run_load(stack)
    print(json.dumps(report.as_dict(), indent=2))
    return 0 if not report.errors and report.overlapping_runs == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
