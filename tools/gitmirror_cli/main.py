"""The `gitmirror` command line. Errors end as `gitmirror_cli.output` says; no secret is ever printed."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from gitmirror.errors import MirrorError, UsageError
from gitmirror.scrub import register_secret, scrub
from gitmirror.values import Action, MirrorOptions, RunStatus, SyncResult
from gitmirror_cli import output
from gitmirror_cli.arguments import SECONDS, SIZE
from gitmirror_cli.exits import EXIT_OK, EXIT_USAGE, exit_for_error, exit_for_status
from gitmirror_cli.output import EXIT_INTERRUPTED, CommandError

if TYPE_CHECKING:
    from gitmirror.mirror.urls import RemoteURL

# `gitmirror sync` gives up after this long, whatever the servers do (every network read is bounded by it)
SYNC_DEADLINE_SECONDS = 4 * 3600.0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(message, EXIT_USAGE)


class _Version(argparse.Action):
    """`gitmirror --version`: one line, or {"version": ...} with --json."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        if output.mode.json:
            print(json.dumps({"version": version()}))
        else:
            print(f"gitmirror {version()}")
        raise SystemExit(EXIT_OK)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("gitmirror")
    except PackageNotFoundError:  # run from a source tree without installing
        from gitmirror import __version__

        return __version__


def _env_secret(name: str) -> str | None:
    value = os.environ.get(name) or None
    register_secret(value)
    return value


class _Process:
    own = False  # set by `run`: the interpreter runs this one command and exits


@contextlib.contextmanager
def _loading_modules() -> Iterator[None]:
    """No cyclic garbage collection while modules load: imports allocate tens of thousands of objects
    and free almost none, so the collections they set off find nothing (~6 ms of a no-op sync). In a
    process of its own what exists then is frozen (kept out of later collections: the modules live as
    long as the process), or the first collection after would scan all of it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _Process.own:
            gc.freeze()
        if enabled:
            gc.enable()


def cmd_sync(args: argparse.Namespace) -> int:
    with _loading_modules():
        from gitmirror.mirror.credentials import from_env_token
        from gitmirror.mirror.engine import sync_mirror
        from gitmirror.mirror.transport import Remote
        from gitmirror.mirror.urls import PERMISSIVE

    source_url = _sync_remote(args.source, "SOURCE")
    target_url = _sync_remote(args.target, "TARGET")
    try:
        options = MirrorOptions(
            keep_divergent_refs=args.keep_divergent_refs,
            branch_filters=tuple(args.branch_filter or ()),
            branch_regex=args.branch_regex,
            lfs=not args.no_lfs,
        )
    except ValueError as exc:
        flag = "--branch-regex" if "regex" in str(exc) else "--branch-filter"
        raise CommandError(f"{flag}: {exc}", EXIT_USAGE) from None
    source = Remote(
        source_url,
        from_env_token(
            source_url, _env_secret("GITMIRROR_SOURCE_TOKEN"), os.environ.get("GITMIRROR_SOURCE_USERNAME")
        ),
        policy=PERMISSIVE,
    )
    target = Remote(
        target_url,
        from_env_token(
            target_url, _env_secret("GITMIRROR_TARGET_TOKEN"), os.environ.get("GITMIRROR_TARGET_USERNAME")
        ),
        policy=PERMISSIVE,
    )
    display = None
    if not args.quiet and sys.stderr.isatty():
        from gitmirror_cli.progress import ProgressDisplay

        display = ProgressDisplay(sys.stderr, (source, target))
    try:
        deadline = time.monotonic() + SYNC_DEADLINE_SECONDS
        result = sync_mirror(
            source,
            target,
            options,
            dry_run=args.dry_run,
            progress=display,
            remaining_seconds=lambda: deadline - time.monotonic(),
            max_push_bytes=args.max_push_bytes,
            time_limit=args.time_limit,
        )
    finally:
        if display is not None:
            display.close()
    if args.json:
        write_sync_json(result, sys.stdout)
    else:
        print(scrub(format_summary(result, source_url.url, target_url.url)))
    return exit_for_status(result.status)


def _sync_remote(value: str, name: str) -> RemoteURL:
    from gitmirror.mirror.urls import missing_scheme_hint, parse_remote

    try:
        remote = parse_remote(value)
    except UsageError as exc:
        raise CommandError(f"{name}: {exc}", EXIT_USAGE) from None
    hint = missing_scheme_hint(value)
    if remote.local_path is not None and hint and not os.path.exists(remote.local_path):
        raise CommandError(
            f"{name}: {value!r} is neither a URL nor an existing local path; did you mean {hint} ?",
            EXIT_USAGE,
        )
    return remote


def sync_json(result: SyncResult) -> dict[str, object]:
    """The `--json` contract: status, divergent_refs, refs, error, lfs, remaining_refs; a failed run's
    reason_code and hint; `"dry_run": true` for a dry run."""
    data = result.to_dict()
    payload = {
        key: data[key] for key in ("status", "divergent_refs", "refs", "error", "lfs", "remaining_refs")
    }
    if result.reason_code is not None:
        payload.update(reason_code=result.reason_code, hint=result.hint)
    if result.dry_run:
        payload["dry_run"] = True
    return _scrubbed(payload)


def _scrubbed(data: Any) -> Any:
    """`data` (JSON values) with every secret the run registered scrubbed out of its serialized text."""
    return json.loads(scrub(json.dumps(data)))


# `--json` refs are written this many at a time: 400,000 of them held at once as dicts and as text
# would take several times the memory of the run itself.
JSON_REFS_PER_WRITE = 1000


def write_sync_json(result: SyncResult, out: TextIO) -> None:
    """`sync_json(result)` as one line of JSON on `out`, written a slice of the refs at a time (the
    same text as `json.dumps(sync_json(result))`)."""
    head, tail = json.dumps(sync_json(dataclasses.replace(result, refs=[]))).split('"refs": []', 1)
    out.write(head + '"refs": [')
    refs = result.refs
    for start in range(0, len(refs), JSON_REFS_PER_WRITE):
        piece = [r.to_dict() for r in refs[start : start + JSON_REFS_PER_WRITE]]
        out.write((", " if start else "") + json.dumps(_scrubbed(piece))[1:-1])
    out.write("]" + tail + "\n")


def format_summary(result: SyncResult, source: str, target: str) -> str:
    dry = " (dry run: nothing was pushed; these are the actions a run would take)" if result.dry_run else ""
    lines = [f"{source} -> {target}: {result.status.value}{dry}"]
    counts = [f"{result.count(a)} {a.value}" for a in Action if result.count(a)]
    if counts:
        lines.append("  " + ", ".join(counts))
    elif result.status == RunStatus.SUCCESS:
        lines.append("  already in sync, nothing to do")
    else:  # a failed run may have stopped before it changed anything: never call that "in sync"
        lines.append("  no ref was changed")
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
    if result.lfs.objects:
        lines.append(f"  LFS: {result.lfs.objects} objects copied ({result.lfs.bytes} bytes)")
    if result.lfs.error:
        lines.append(f"  LFS error: {result.lfs.error}")
    if result.remaining_refs:
        lines.append(
            f"  stopped by the time limit: {len(result.remaining_refs)} ref(s) not yet at their final value; "
            "run the same command again to continue"
        )
    if result.error:
        lines.append(f"  error: {result.error}")
        if result.hint:
            lines.append(f"  hint [{result.reason_code}]: {result.hint}")
    return "\n".join(lines)


SYNC_DESCRIPTION = """\
Mirror SOURCE into TARGET once, with GitLab's push-mirror rules: branches and tags only, target refs
the source lacks deleted only when merged into its default branch, diverged refs overwritten (or, with
--keep-divergent-refs, skipped and reported). Credentials come from the environment, never argv:
GITMIRROR_SOURCE_TOKEN / GITMIRROR_TARGET_TOKEN (and *_USERNAME). Progress goes to stderr when it is a
terminal. Exit status: 0 success, 3 partial, 1 failed, 2 usage error."""

EPILOG = (
    "Exit status: 0 ok, 1 failed, 2 usage error, 3 partial. With --json every outcome is one JSON object."
)


def _command(sub: Any, name: str, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help_text,
        description=description or help_text[0].upper() + help_text[1:] + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _sample_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sample",
        choices=["auto", "httpx", "generated"],
        default="auto",
        help="upstream history: the httpx bundle from ../shared/bench, a generated one, or auto "
        "(the bundle when it is there; default)",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `command="sync"`, only that command's parser: what runs, with the
    same help and errors, without the service commands' parsers (~5 ms to build, a no-op sync takes
    ~0.1 s)."""
    parser = _Parser(
        prog="gitmirror", description="GitLab-grade push mirroring of git repositories.", epilog=EPILOG
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        required=True,
        parser_class=_Parser,
        help="`gitmirror COMMAND --help` describes each",
    )

    sync = _command(sub, "sync", "mirror SOURCE into TARGET once", SYNC_DESCRIPTION)
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
        "--max-push-bytes",
        type=SIZE,
        metavar="SIZE",
        help="no push larger than SIZE bytes (K, M, G suffixes: powers of 1024); more goes in several pushes",
    )
    sync.add_argument(
        "--time-limit",
        type=SECONDS,
        metavar="SECONDS",
        help="start no new push after SECONDS (exit 4, incomplete, if refs remain: run again to continue)",
    )
    sync.add_argument(
        "--no-lfs",
        action="store_true",
        help="do not copy Git LFS objects (only the pointer files are pushed)",
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="list both sides and fetch what the plan needs, report what a run would do; push nothing",
    )
    sync.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout (the progress display, if any, stays on stderr)",
    )
    sync.add_argument(
        "--quiet", "-q", action="store_true", help="no progress display on stderr, even on a terminal"
    )
    sync.set_defaults(func=cmd_sync)
    if command == "sync":
        return parser
    from gitmirror_cli import service as cli_service

    cli_service.register(sub)

    demo = _command(
        sub,
        "demo",
        "run the whole webhook -> mirror -> status flow locally",
        "Start the local stack, register a mirror, send a signed GitHub push webhook, run the worker,\n"
        "show the status and the downstream's refs, then a divergent case; stop everything. Exit 1 if a\n"
        "step fails.",
    )
    _sample_arg(demo)
    demo.set_defaults(func=_lazy("gitmirror_dev.demo", "main"))

    serve = _command(
        sub,
        "serve",
        "serve the webhook and management API locally",
        "Serve POST /webhooks/{github,gitlab,gitea} and the /mirrors API over HTTP, calling the same\n"
        "Lambda handlers, with the AWS resources the environment names (e.g. a moto server).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default: 8080; 0 picks one)"
    )
    serve.set_defaults(func=_lazy("gitmirror_dev.commands", "serve"))

    local = _command(sub, "local", "the docker-free local stack (moto server, git servers, API, worker)")
    local_sub = local.add_subparsers(
        dest="local_command", metavar="ACTION", required=True, parser_class=_Parser, help="up or init"
    )
    up = _command(
        local_sub,
        "up",
        "start the local stack and leave it running (Ctrl-C or SIGTERM stops it)",
        "Start a moto server, an upstream and a downstream git server, the tables, queue and secrets,\n"
        "the HTTP API and a worker, and register one mirror per provider. Prints where everything is,\n"
        "the exports for the CLI, how to push upstream and a signed curl per provider; then the INFO\n"
        "logs of the receiver and the worker. Ctrl-C or SIGTERM stops it and removes its files.",
    )
    up.add_argument(
        "--port", type=int, default=8080, help="port of the HTTP API (default: 8080; 0 picks one)"
    )
    _sample_arg(up)
    up.set_defaults(func=_lazy("gitmirror_dev.commands", "local_up"))
    init = _command(
        local_sub,
        "init",
        "create the tables, queue and DLQ at the endpoint the environment names (e.g. a moto server)",
        "Create what template.yaml would (mirrors, runs and idempotency tables, the FIFO queue and its\n"
        "DLQ) at AWS_ENDPOINT_URL, named by MIRRORS_TABLE, RUNS_TABLE, IDEMPOTENCY_TABLE and QUEUE_URL.",
    )
    init.add_argument("--json", action="store_true", help="print one JSON object (the names created)")
    init.set_defaults(func=_lazy("gitmirror_dev.commands", "local_init"))

    events = _command(
        sub,
        "events",
        "write the sample events (signed webhooks, API, SQS, schedule)",
        "Write the sample events of every function (see events/README.md), the webhooks signed with\nSECRET.",
    )
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
    from gitmirror import logs

    logs.install()
    argv = list(sys.argv[1:] if argv is None else argv)
    output.mode.json = output.wants_json(argv)
    try:
        args = build_parser(argv[0] if argv else None).parse_args(argv)
        code: int = args.func(args)
    except CommandError as exc:
        return output.emit_error(str(exc), exc.exit_code)
    except MirrorError as exc:
        return output.emit_error(exc.message, exit_for_error(exc))
    except KeyboardInterrupt:
        return output.emit_error("interrupted", EXIT_INTERRUPTED)
    return code


def run() -> NoReturn:
    """The console script: `main`, then exit as soon as the output is flushed.

    Every command has cleaned up after itself by then (scratch directories are context-managed), so
    the interpreter's teardown of dulwich, urllib3 and boto3 modules (~20 ms on a sync) only delays
    the exit. It runs as usual when a non-daemon thread is still alive.
    """
    import logging
    import threading

    _Process.own = True
    try:
        code = main()
    except BrokenPipeError:
        # the reader of the output went away (`| head`): what ran is done, its report cannot be delivered
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
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
