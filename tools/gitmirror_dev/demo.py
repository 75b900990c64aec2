"""`make demo` / `gitmirror demo`: the whole flow on this machine, no AWS account, no Docker.

upstream git server --(signed GitHub push webhook)--> gitmirror serve --> SQS (moto) --> worker
--> downstream git server, with the mirror's status in DynamoDB (moto); then a divergent downstream
commit with keep-divergent-refs on, and the partial result naming the diverged ref.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gitmirror.manage.mirrors import update_mirror
from gitmirror.records import MirrorSettings
from gitmirror_dev import samples
from gitmirror_dev.stack import Stack, local_stack


class DemoFailed(Exception):
    pass


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailed(message)


def show_status(stack: Stack, mirror_id: str) -> dict[str, object]:
    item = stack.store.raw(mirror_id) or {}
    shown = {
        k: item.get(k)
        for k in (
            "id",
            "update_status",
            "result",
            "last_update_started_at",
            "last_update_at",
            "last_successful_update_at",
            "last_error",
            "divergent_refs",
            "refs_created",
            "refs_updated",
            "refs_deleted",
            "refs_rejected",
            "refs_skipped",
        )
    }
    print(f"    DynamoDB get-item {stack.settings.mirrors_table} id={mirror_id}:")
    for line in json.dumps(shown, indent=2, default=str).splitlines():
        print(f"      {line}")
    return item


def show_refs(stack: Stack) -> dict[str, str]:
    refs = ref_map(stack.downstream)
    heads = sorted(r for r in refs if r.startswith("refs/heads/"))
    tags = sorted(r for r in refs if r.startswith("refs/tags/"))
    print(f"    downstream has {len(heads)} branches and {len(tags)} tags")
    for name in heads[:6] + tags[-3:]:
        print(f"      {refs[name][:12]}  {name}")
    return refs


def ref_map(repo: Path) -> dict[str, str]:
    out = samples.git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return {name: sha for name, sha in (line.split(" ", 1) for line in out.splitlines() if line)}


def upstream_refs(stack: Stack) -> dict[str, str]:
    return ref_map(stack.upstream)


def run_demo(sample: str = "auto") -> None:
    step("Starting the local stack: moto server, upstream and downstream git servers, gitmirror serve")
    with local_stack(sample=sample) as stack:
        print(f"    AWS endpoint (moto):  {stack.endpoint}")
        print(f"    upstream repository:  {stack.source.repo_url('upstream.git')}")
        print(f"    downstream repository: {stack.target.repo_url('downstream.git')}")
        print(f"    webhook URL:          {stack.api_url}/webhooks/github")
        up = upstream_refs(stack)
        print(f"    upstream has {len(up)} branches and tags")

        step("Registering a mirror (credentials and webhook secret in Secrets Manager)")
        mirror = stack.register_mirror()
        print(f"    mirror {mirror.id}: {mirror.source_url} -> {mirror.url}")

        step("Sending a signed GitHub push webhook over HTTP")
        status, reply = stack.send_github_push()
        print(f"    HTTP {status} {json.dumps(reply)}")
        check(status == 202 and reply.get("queued") == 1, "the webhook was not accepted")
        check(show_status(stack, mirror.id).get("update_status") == "scheduled", "status is not scheduled")

        step("Running the worker on the queue (local SQS event source)")
        started = time.monotonic()
        handled = stack.poller.drain()
        print(f"    handled {handled} job(s) in {time.monotonic() - started:.1f}s")
        item = show_status(stack, mirror.id)
        check(item.get("update_status") == "finished" and item.get("result") == "success", "the run failed")
        refs = show_refs(stack)
        check(refs == up, "the downstream refs do not match the upstream")
        print("    downstream matches upstream exactly")

        step("Making a divergent commit downstream, turning keep-divergent-refs on, pushing upstream")
        branch = next(
            (
                r.removeprefix("refs/heads/")
                for r in sorted(up)
                if r.startswith("refs/heads/") and "master" not in r and "main" not in r
            ),
            None,
        )
        if branch is None:
            branch = "feature/x"
            samples.commit(stack.upstream, branch, "x.txt", "x\n", "upstream: feature")
        samples.commit(
            stack.downstream, branch, "downstream.txt", "made downstream\n", "downstream-only work"
        )
        samples.commit(stack.upstream, branch, "upstream.txt", "made upstream\n", "upstream work")
        default = samples.git(stack.upstream, "symbolic-ref", "--short", "HEAD")
        samples.commit(stack.upstream, default, "NEWS.md", "news\n", "upstream: fast-forward")
        update_mirror(
            mirror.id, MirrorSettings(keep_divergent_refs=True), stack.store, stack.settings.secrets_prefix
        )
        status, reply = stack.send_github_push()
        print(f"    HTTP {status} {json.dumps(reply)}")
        check(status == 202, "the second webhook was not accepted")
        stack.poller.drain()
        item = show_status(stack, mirror.id)
        check(item.get("result") == "partial", "expected a partial result")
        check(item.get("divergent_refs") == [f"refs/heads/{branch}"], "the diverged ref is not named")
        refs = show_refs(stack)
        check(
            refs[f"refs/heads/{default}"] == upstream_refs(stack)[f"refs/heads/{default}"], "no fast-forward"
        )
        print(f"    refs/heads/{branch} kept its downstream commit; refs/heads/{default} was fast-forwarded")
        step("Demo finished: every step passed; stopping everything")


def main(args: argparse.Namespace | None = None) -> int:
    sample = getattr(args, "sample", "auto") if args is not None else "auto"
    try:
        run_demo(sample)
    except DemoFailed as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
        return 1
    return 0
