"""`gitmirror serve` and `gitmirror local up`."""

from __future__ import annotations

import argparse
import shlex
import threading

from gitmirror_dev.serve import make_server
from gitmirror_dev.stack import local_stack, run_poller_forever


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

    from botocore.exceptions import ClientError

    from gitmirror.settings import CliSettings, load
    from gitmirror_dev.moto_stack import create_resources

    settings = load(CliSettings)
    if not settings.queue_url:
        print("gitmirror: error: set QUEUE_URL (and MIRRORS_TABLE, RUNS_TABLE, IDEMPOTENCY_TABLE)")
        return 2
    try:
        created = create_resources(settings)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in ("ResourceInUseException", "QueueAlreadyExists"):
            print(f"gitmirror: error: {code or exc}")
            return 1
        print("gitmirror: resources already exist")
        return 0
    print(json.dumps({"mirrors_table": settings.mirrors_table, "runs_table": settings.runs_table, **created}))
    return 0


def local_up(args: argparse.Namespace) -> int:
    with local_stack(sample=args.sample, port=args.port) as stack:
        mirror = stack.register_mirror()
        stop = threading.Event()
        poller = threading.Thread(target=run_poller_forever, args=(stack, stop), daemon=True)
        poller.start()
        env = {k: stack_env for k, stack_env in __import__("os").environ.items() if k in _EXPORTS}
        print("gitmirror local stack is up (Ctrl-C stops everything)")
        print(f"  webhooks:       {stack.api_url}/webhooks/{{github,gitlab,gitea}}")
        print(f"  management API: {stack.api_url}/mirrors")
        print(f"  upstream:       {stack.source.repo_url('upstream.git')}  (user {stack.source.username})")
        print(f"  downstream:     {stack.target.repo_url('downstream.git')}  (user {stack.target.username})")
        print(f"  mirror id:      {mirror.id} (webhook secret in gitmirror/local/webhook)")
        print("  git credentials: the secrets gitmirror/local/source and gitmirror/local/target")
        print(
            "    (aws secretsmanager get-secret-value --secret-id gitmirror/local/source, with the exports below)"
        )
        print("  to use the CLI against it:")
        for key, value in sorted(env.items()):
            print(f"    export {key}={shlex.quote(value)}")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            poller.join(timeout=5)
    return 0


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
