"""`gitmirror serve` and `gitmirror local up`."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import signal
import threading
from collections.abc import Iterator

from gitmirror.values import Provider
from gitmirror_cli.exits import EXIT_FAILED, EXIT_USAGE
from gitmirror_cli.output import CommandError
from gitmirror_dev.serve import make_server
from gitmirror_dev.stack import (
    WEBHOOK_SECRET,
    SignedPush,
    Stack,
    local_stack,
    run_poller_forever,
    signed_push,
)


def _serve_environment() -> None:
    """Defaults for what `serve` runs: the Powertools variables template.yaml sets, and, against a local
    endpoint, the table and queue names `local init` creates. Anything set already wins; a variable still
    missing fails the handlers' cold start with a message naming it."""
    import os

    from gitmirror.settings import ApiSettings, WebhookSettings, required_variable_names
    from gitmirror_dev.lambdas import POWERTOOLS_DEFAULTS
    from gitmirror_dev.moto_stack import local_environment

    for key, value in POWERTOOLS_DEFAULTS.items():
        os.environ.setdefault(key, value)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        local = local_environment(endpoint)
        for name in {*required_variable_names(WebhookSettings), *required_variable_names(ApiSettings)}:
            os.environ.setdefault(name, local[name])


def serve(args: argparse.Namespace) -> int:
    _serve_environment()
    with _port_in_use(args.port):
        server = make_server(args.host, args.port)
    print(
        f"gitmirror serve: http://{args.host}:{server.server_address[1]} (webhooks and management API)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def local_init(args: argparse.Namespace) -> int:
    """Create what template.yaml would, at AWS_ENDPOINT_URL; existing resources are left as they are."""
    import json

    from botocore.exceptions import BotoCoreError, ClientError

    from gitmirror.settings import CliSettings, load
    from gitmirror_dev.moto_stack import create_resources

    settings = load(CliSettings)
    if not settings.queue_url:
        raise CommandError("set QUEUE_URL (and MIRRORS_TABLE, RUNS_TABLE, IDEMPOTENCY_TABLE)", EXIT_USAGE)
    try:
        created = create_resources(settings)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in ("ResourceInUseException", "QueueAlreadyExists"):
            raise CommandError(f"cannot create the resources: {code or exc}", EXIT_FAILED) from None
        if getattr(args, "json", False):
            print(json.dumps({"mirrors_table": settings.mirrors_table, "already_exist": True}))
        else:
            print("gitmirror: resources already exist")
        return 0
    except BotoCoreError as exc:
        raise CommandError(f"cannot reach AWS: {exc}", EXIT_FAILED) from None
    print(json.dumps({"mirrors_table": settings.mirrors_table, "runs_table": settings.runs_table, **created}))
    return 0


@contextlib.contextmanager
def _port_in_use(port: int) -> Iterator[None]:
    """A taken --port is a one-line failure that says what to do, not a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise CommandError(
            f"port {port} is already in use: stop what listens there, or pass --port 0 to pick a free one",
            EXIT_FAILED,
        ) from None


LOCAL_MIRRORS = {Provider.GITHUB: "demo", Provider.GITLAB: "demo-gitlab", Provider.GITEA: "demo-gitea"}
READY = "gitmirror local up: ready"


def local_up(args: argparse.Namespace) -> int:
    """The local stack, left running until Ctrl-C or SIGTERM; then everything is stopped and removed."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with (
            _port_in_use(args.port),
            local_stack(sample=args.sample, port=args.port, log_level="INFO") as stack,
        ):
            for provider, mirror_id in LOCAL_MIRRORS.items():
                stack.register_mirror(provider=provider, mirror_id=mirror_id)
            pushes = [signed_push(p, stack.workdir / "webhooks", WEBHOOK_SECRET) for p in LOCAL_MIRRORS]
            print(banner(stack, pushes), flush=True)
            poller = threading.Thread(target=run_poller_forever, args=(stack, stop), daemon=True)
            poller.start()
            print(READY + " (the receiver's and the worker's logs follow)", flush=True)
            while not stop.wait(0.5):
                pass
            print("gitmirror local up: stopping", flush=True)
            poller.join(timeout=30)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("gitmirror local up: stopped, its files removed", flush=True)
    return 0


def banner(stack: Stack, pushes: list[SignedPush]) -> str:
    env = {k: v for k, v in os.environ.items() if k in _EXPORTS}
    env |= {
        "GITMIRROR_API": stack.api_url,
        "GITMIRROR_UPSTREAM": str(stack.upstream),
        "GITMIRROR_DOWNSTREAM": str(stack.downstream),
        "GITMIRROR_WEBHOOKS": str(pushes[0].body_file.parent),  # the signed bodies the curls send
    }
    mirrors = ", ".join(f"{m} ({p.value})" for p, m in LOCAL_MIRRORS.items())
    lines = [
        f"gitmirror local stack is up in {stack.workdir} (Ctrl-C or SIGTERM stops it and removes it)",
        "",
        f"  API:         {stack.api_url}/webhooks/{{github,gitlab,gitea}} and {stack.api_url}/mirrors",
        f"  upstream:    {stack.upstream}",
        f"               served at {stack.source.repo_url('upstream.git')} (user {stack.source.username})",
        f"  downstream:  {stack.target.repo_url('downstream.git')} (user {stack.target.username})",
        f"               on disk at {stack.downstream}",
        f"  mirrors:     {mirrors}: upstream -> downstream",
        "  secrets:     gitmirror/local/source, gitmirror/local/target (git credentials), "
        f"gitmirror/local/webhook ({WEBHOOK_SECRET!r})",
        "",
        "Use the CLI and the AWS CLI against it (in another shell):",
        *(f"  export {key}={shlex.quote(value)}" for key, value in sorted(env.items())),
        "",
        "Push a commit upstream (the upstream sends no webhooks itself; send one below):",
        '  git clone -q "$GITMIRROR_UPSTREAM" work && cd work',
        "  git -c user.name=you -c user.email=you@example.com commit -q --allow-empty -m 'try gitmirror'",
        "  git push -q origin HEAD && cd ..",
        "",
        "Send a signed push webhook (each queues a sync of its provider's mirror):",
        *(f"  {push.provider.value}: {push.curl(stack.api_url)}" for push in pushes),
        "",
        'Then: gitmirror status; gitmirror runs demo; git ls-remote "$GITMIRROR_DOWNSTREAM"',
    ]
    return "\n".join(lines)


_EXPORTS = {
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MIRRORS_TABLE",
    "RUNS_TABLE",
    "IDEMPOTENCY_TABLE",
    "QUEUE_URL",
    "SECRETS_PREFIX",
    "ALLOW_INSECURE_HTTP",
    "ALLOW_LOOPBACK",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
}
