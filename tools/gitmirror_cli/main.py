"""The `gitmirror` command line. Usage errors exit 2 with one line; no secret is ever printed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from gitmirror.errors import MirrorError, UsageError
from gitmirror.scrub import register_secret, scrub
from gitmirror.values import Action, MirrorOptions, SyncResult
from gitmirror_cli import service as cli_service
from gitmirror_cli.exits import EXIT_USAGE, exit_for_error, exit_for_status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"gitmirror: error: {scrub(message)}\n")
        raise SystemExit(EXIT_USAGE)


def _usage(message: str) -> NoReturn:
    sys.stderr.write(f"gitmirror: error: {scrub(message)}\n")
    raise SystemExit(EXIT_USAGE)


def _env_secret(name: str) -> str | None:
    value = os.environ.get(name) or None
    register_secret(value)
    return value


def cmd_sync(args: argparse.Namespace) -> int:
    from gitmirror.mirror.credentials import from_env_token
    from gitmirror.mirror.engine import sync_mirror
    from gitmirror.mirror.transport import Remote
    from gitmirror.mirror.urls import parse_remote

    try:
        source_url = parse_remote(args.source)
        target_url = parse_remote(args.target)
        options = MirrorOptions(
            keep_divergent_refs=args.keep_divergent_refs,
            branch_filters=tuple(args.branch_filter or ()),
            branch_regex=args.branch_regex,
        )
    except (UsageError, ValueError) as exc:
        _usage(str(exc))
    source = Remote(
        source_url,
        from_env_token(
            source_url, _env_secret("GITMIRROR_SOURCE_TOKEN"), os.environ.get("GITMIRROR_SOURCE_USERNAME")
        ),
    )
    target = Remote(
        target_url,
        from_env_token(
            target_url, _env_secret("GITMIRROR_TARGET_TOKEN"), os.environ.get("GITMIRROR_TARGET_USERNAME")
        ),
    )
    result = sync_mirror(source, target, options, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(sync_json(result)))
    else:
        print(scrub(format_summary(result, source_url.url, target_url.url)))
    return exit_for_status(result.status)


def sync_json(result: SyncResult) -> dict[str, object]:
    """The `--json` contract: status, divergent_refs, refs, error; a failed run's reason_code and hint;
    `"dry_run": true` for a dry run."""
    data = result.to_dict()
    payload = {key: data[key] for key in ("status", "divergent_refs", "refs", "error")}
    if result.reason_code is not None:
        payload.update(reason_code=result.reason_code, hint=result.hint)
    if result.dry_run:
        payload["dry_run"] = True
    return json.loads(scrub(json.dumps(payload)))


def format_summary(result: SyncResult, source: str, target: str) -> str:
    dry = " (dry run: nothing was pushed; these are the actions a run would take)" if result.dry_run else ""
    lines = [f"{source} -> {target}: {result.status.value}{dry}"]
    counts = [f"{result.count(a)} {a.value}" for a in Action if result.count(a)]
    lines.append("  " + (", ".join(counts) if counts else "already in sync, nothing to do"))
    for ref in result.refs:
        old = ref.old[:12] if ref.old else "-"
        new = ref.new[:12] if ref.new else "-"
        line = f"  {ref.action.value:<15} {ref.ref}  {old} -> {new}"
        if ref.error:
            line += f"  ({ref.error})"
        lines.append(line)
        if ref.hint:
            lines.append(f"      hint [{ref.reason_code}]: {ref.hint}")
    if result.divergent_refs:
        lines.append(
            "  Some refs have diverged and have not been updated on the remote: "
            + ", ".join(result.divergent_refs)
        )
    if result.error:
        lines.append(f"  error: {result.error}")
        if result.hint:
            lines.append(f"  hint [{result.reason_code}]: {result.hint}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gitmirror", description="GitLab-grade push mirroring of git repositories.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sync = sub.add_parser("sync", help="mirror SOURCE into TARGET once")
    sync.add_argument("source", metavar="SOURCE", help="http(s):// URL, file:// URL or local path")
    sync.add_argument("target", metavar="TARGET", help="http(s):// URL, file:// URL or local path")
    sync.add_argument(
        "--keep-divergent-refs",
        action="store_true",
        help="never overwrite a target ref that is not an ancestor of the source's; skip and report it",
    )
    sync.add_argument(
        "--branch-filter",
        action="append",
        metavar="PATTERN",
        help="mirror only branches whose short name matches; '*' matches anything (repeatable)",
    )
    sync.add_argument("--branch-regex", metavar="REGEX", help="mirror only branches fully matching REGEX")
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="list both sides and fetch what the plan needs, report what a run would do; push nothing",
    )
    sync.add_argument("--json", action="store_true", help="print one JSON object")
    sync.set_defaults(func=cmd_sync)
    cli_service.register(sub)

    demo = sub.add_parser("demo", help="run the whole webhook -> mirror -> status flow locally")
    demo.add_argument("--sample", choices=["auto", "httpx", "generated"], default="auto")
    demo.set_defaults(func=_lazy("gitmirror_dev.demo", "main"))

    serve = sub.add_parser("serve", help="serve the webhook and management API locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(func=_lazy("gitmirror_dev.commands", "serve"))

    local = sub.add_parser("local", help="the docker-free local stack")
    local_sub = local.add_subparsers(dest="local_command", required=True, parser_class=_Parser)
    up = local_sub.add_parser("up", help="start the local stack and leave it running (Ctrl-C stops it)")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument("--sample", choices=["auto", "httpx", "generated"], default="auto")
    up.set_defaults(func=_lazy("gitmirror_dev.commands", "local_up"))
    init = local_sub.add_parser(
        "init",
        help="create the tables, queue and DLQ at the endpoint the environment names (e.g. a moto server)",
    )
    init.set_defaults(func=_lazy("gitmirror_dev.commands", "local_init"))

    events = sub.add_parser("events", help="write the sample events (signed webhooks, API, SQS, schedule)")
    events.add_argument("--secret", required=True, help="the webhook secret that signs the webhook events")
    events.add_argument("--out", default="events", metavar="DIR", help="output directory (default: events/)")
    events.set_defaults(func=_lazy("gitmirror_dev.events", "main"))
    return parser


def _lazy(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        func: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), name)
        return func(args)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except MirrorError as exc:
        if exit_for_error(exc) == EXIT_USAGE:
            _usage(str(exc))
        sys.stderr.write(f"gitmirror: error: {scrub(str(exc))}\n")
        return exit_for_error(exc)
    except KeyboardInterrupt:
        return 130
    return code


def run() -> NoReturn:
    """The console script: `main`, then exit as soon as the output is flushed.

    Every command has cleaned up after itself by then (scratch directories are context-managed), so
    the interpreter's teardown of dulwich, urllib3 and boto3 modules (~20 ms on a sync) only delays
    the exit. It runs as usual when a non-daemon thread is still alive.
    """
    import logging
    import threading

    code = main()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a reader that went away (`| head`): nothing more can be delivered
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
