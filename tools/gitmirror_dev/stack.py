"""The docker-free local stack: moto server, two git servers, tables/queue/secrets, `serve`, a poller.

Used by `gitmirror demo`, `gitmirror local up` and the end-to-end test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitmirror.adapters.aws.mirror_table import MirrorStore
from gitmirror.manage.mirrors import create_mirror
from gitmirror.records import Mirror, MirrorSpec
from gitmirror.settings import CliSettings, load
from gitmirror.values import Provider
from gitmirror.webhook.payloads import peek_repository
from gitmirror_dev import samples
from gitmirror_dev.gitserver import GitHTTPServer
from gitmirror_dev.lambdas import QueuePoller, load_function
from gitmirror_dev.moto_stack import create_resources, local_environment, moto_server, put_secret
from gitmirror_dev.serve import serve_in_thread
from gitmirror_dev.signing import sign_gitea, sign_github

SOURCE_USER, TARGET_USER = "upstream-bot", "downstream-bot"
WEBHOOK_SECRET = "gitmirror-demo-webhook-secret"
# The real GitHub push payload (go-playground/webhooks testdata) names repository id 63933911.
DEMO_REPO_ID, DEMO_REPO_NAME = "63933911", "binkkatal/sample_app"


# provider -> a real push delivery of that host (vendored, byte for byte)
_PUSH_SAMPLES = {
    Provider.GITHUB: "github/push.json",
    Provider.GITLAB: "gitlab/push-hook.json",
    Provider.GITEA: "gitea/push.json",
}


def push_body(provider: Provider) -> bytes:
    return samples.webhook_payload(_PUSH_SAMPLES[provider])


@dataclass(frozen=True)
class SignedPush:
    """A push webhook ready to send with curl: its body on disk and the headers that sign it."""

    provider: Provider
    body_file: Path
    headers: dict[str, str]  # the delivery id header is left to the sender (a new one per delivery)
    delivery_header: str

    def curl(self, api_url: str) -> str:
        parts = [f"curl -sS -X POST {api_url}/webhooks/{self.provider.value}"]
        parts += [f"-H {shlex.quote(f'{k}: {v}')}" for k, v in self.headers.items()]
        # a new delivery id each time (the receiver drops a delivery id it has seen)
        parts.append(f'-H "{self.delivery_header}: local-$(date +%s)-$$"')
        parts.append(f"--data-binary @{shlex.quote(str(self.body_file))}")
        return " ".join(parts)


def signed_push(provider: Provider, directory: Path, secret: str) -> SignedPush:
    body = push_body(provider)
    directory.mkdir(parents=True, exist_ok=True)
    body_file = directory / f"{provider.value}-push.json"
    body_file.write_bytes(body)
    headers = {"Content-Type": "application/json"}
    if provider == Provider.GITHUB:
        headers |= {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign_github(body, secret)}
        delivery = "X-GitHub-Delivery"
    elif provider == Provider.GITLAB:
        headers |= {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}
        delivery = "X-Gitlab-Event-UUID"
    else:
        headers |= {"X-Gitea-Event": "push", "X-Gitea-Signature": sign_gitea(body, secret)}
        delivery = "X-Gitea-Delivery"
    return SignedPush(provider, body_file, headers, delivery)


@dataclass
class Stack:
    workdir: Path
    endpoint: str
    api_url: str
    source: GitHTTPServer
    target: GitHTTPServer
    settings: CliSettings
    store: MirrorStore
    poller: QueuePoller
    source_token: str = field(repr=False)
    target_token: str = field(repr=False)

    @property
    def upstream(self) -> Path:
        return self.source.repo_path("upstream.git")

    @property
    def downstream(self) -> Path:
        return self.target.repo_path("downstream.git")

    def register_mirror(
        self, keep_divergent_refs: bool = False, provider: Provider = Provider.GITHUB, mirror_id: str = "demo"
    ) -> Mirror:
        """A mirror upstream -> downstream that the provider's sample push webhook matches."""
        names = {k: f"gitmirror/local/{k}" for k in ("source", "target", "webhook")}
        put_secret(names["source"], json.dumps({"username": SOURCE_USER, "token": self.source_token}))
        put_secret(names["target"], json.dumps({"username": TARGET_USER, "token": self.target_token}))
        put_secret(names["webhook"], WEBHOOK_SECRET)
        identity = peek_repository(provider, {"Content-Type": "application/json"}, push_body(provider))
        repo_id, full_name = identity or (DEMO_REPO_ID, DEMO_REPO_NAME)
        spec = MirrorSpec(
            id=mirror_id,
            source_url=self.source.repo_url("upstream.git"),
            url=self.target.repo_url("downstream.git"),
            provider=provider,
            source_repo_id=repo_id if repo_id.isdigit() else None,
            source_full_name=full_name,
            keep_divergent_refs=keep_divergent_refs,
            source_secret=names["source"],
            target_secret=names["target"],
            webhook_secret=names["webhook"],
        )
        return create_mirror(spec, self.store, self.settings.policy, self.settings.secrets_prefix)

    def send_github_push(self, delivery: str | None = None) -> tuple[int, dict[str, Any]]:
        delivery = delivery or str(uuid.uuid4())
        # a redelivery (same id) repeats its body; a new push has a body of its own
        body = samples.distinct_github_push(delivery)
        request = urllib.request.Request(  # noqa: S310 - loopback http
            f"{self.api_url}/webhooks/github",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "GitHub-Hookshot/local",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": sign_github(body, WEBHOOK_SECRET),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


@contextlib.contextmanager
def local_stack(
    *,
    sample: str = "auto",
    port: int = 0,
    log_level: str | None = None,
    lfs: bool = False,
    prefix: str = "gitmirror-local",
) -> Iterator[Stack]:
    """Start everything; on exit stop every process and thread it started and remove its files.
    `log_level` sets the functions' POWERTOOLS_LOG_LEVEL (default: the environment's, else WARNING).
    `lfs`: both git servers serve Git LFS too (giftless, see gitmirror_dev.lfsmount). `prefix` names the
    tables and queues (moto keeps one state per process: a second stack in a process needs its own)."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    workdir = Path(tempfile.mkdtemp(prefix="gitmirror-local-"))
    saved_env = dict(os.environ)
    source_token, target_token = f"local-src-{uuid.uuid4().hex}", f"local-dst-{uuid.uuid4().hex}"
    try:
        with (
            moto_server() as endpoint,
            GitHTTPServer(workdir / "upstream-host", SOURCE_USER, source_token, lfs=lfs) as source,
            GitHTTPServer(workdir / "downstream-host", TARGET_USER, target_token, lfs=lfs) as target,
        ):
            os.environ.update(local_environment(endpoint, prefix))
            os.environ["RETRY_BASE_SECONDS"] = "1"
            if log_level:
                os.environ["POWERTOOLS_LOG_LEVEL"] = log_level
            settings = load(CliSettings)
            create_resources(settings)
            upstream = source.create_bare("upstream.git")
            target.create_bare("downstream.git")
            bundle = samples.find_bundle() if sample in ("auto", "httpx") else None
            if bundle is not None:
                samples.fill_from_bundle(upstream, bundle)
            else:
                samples.generated_history(upstream)
            server, api_url = serve_in_thread("127.0.0.1", port)
            try:
                yield Stack(
                    workdir=workdir,
                    endpoint=endpoint,
                    api_url=api_url,
                    source=source,
                    target=target,
                    settings=settings,
                    store=MirrorStore(settings.mirrors_table, settings.runs_table),
                    poller=QueuePoller(load_function("worker"), settings.queue_url),
                    source_token=source_token,
                    target_token=target_token,
                )
            finally:
                server.shutdown()
                server.server_close()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        shutil.rmtree(workdir, ignore_errors=True)


def run_poller_forever(stack: Stack, stop: threading.Event) -> None:
    while not stop.is_set():
        if stack.poller.poll_once(wait_seconds=1) == 0:
            stop.wait(0.5)
