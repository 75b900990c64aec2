"""`gitmirror mirrors|status|runs`: manage the deployed service's mirrors from a terminal.

The commands talk to DynamoDB and SQS through boto3 (so `AWS_ENDPOINT_URL`, `AWS_PROFILE`, ... apply) and
read the same environment as the Lambdas (MIRRORS_TABLE, RUNS_TABLE, QUEUE_URL, SECRETS_PREFIX, ...).
Usage errors exit 2 and write nothing; operational failures (no such mirror, AWS unreachable) exit 1;
both end as `gitmirror_cli.output` says (one line, or one JSON object with --json). Only secret *names*
are ever handled, never their values.

This module is imported by `cli.py` on every invocation: keep its top-level imports light (boto3 and
the store are imported inside the commands).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from gitmirror.errors import MirrorError, MirrorExists, MirrorNotFound, UsageError
from gitmirror.scrub import scrub
from gitmirror.values import MIRROR_ID, Action, AuthMethod, Provider, RunStatus, parse_iso, utcnow
from gitmirror_cli.arguments import SIZE
from gitmirror_cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, exit_for_error
from gitmirror_cli.output import CommandError, warn

if TYPE_CHECKING:
    from gitmirror.adapters.aws.mirror_table import MirrorStore
    from gitmirror.records import Mirror, RunRecord
    from gitmirror.settings import CliSettings


STUCK_TEXT = "failed (stuck: started over an hour ago)"
ERROR_WIDTH = 60
_CHANGED = (Action.CREATE, Action.UPDATE, Action.FORCE_UPDATE, Action.DELETE)
# pydantic field -> the flag that sets it, for readable validation errors
_FLAGS = {
    "mirror_branch_regex": "--branch-regex",
    "branch_filters": "--branch-filter",
    "enabled": "--disabled",
    "lfs": "--no-lfs",
}

Command = Callable[[argparse.Namespace], int]


# --- errors -----------------------------------------------------------------------------------------


def _usage(message: str) -> NoReturn:
    raise CommandError(message, EXIT_USAGE)


def _fail(message: str) -> NoReturn:
    raise CommandError(message, EXIT_FAILED)


def _validation_message(exc: Any) -> str:
    from gitmirror.records import validation_message

    parts = []
    for err in exc.errors():
        loc = err.get("loc") or ()
        field = loc[0] if loc and isinstance(loc[0], str) else None
        msg = validation_message(err)
        flag = _FLAGS.get(field, "--" + field.replace("_", "-")) if field else None
        parts.append(f"{flag}: {msg}" if flag else msg)
    return "; ".join(parts) or "invalid input"


def _aws_message(exc: Exception) -> str:
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        if code == "ResourceNotFoundException":
            return f"AWS resource not found ({error.get('Message', code)}): check MIRRORS_TABLE/RUNS_TABLE"
        if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return "the sync queue does not exist: check QUEUE_URL"
        return f"AWS request failed: {code}: {error.get('Message', '')}".rstrip(": ")
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, NoRegionError):
        return "no AWS region configured: set AWS_DEFAULT_REGION (or AWS_REGION, or a profile region)"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return f"cannot reach AWS: {exc}"
    return f"AWS request failed: {type(exc).__name__}: {exc}"


def _guarded(func: Command) -> Command:
    """Turn every expected failure into one line on stderr and an exit code; never a traceback."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from botocore.exceptions import BotoCoreError, ClientError
        from pydantic import ValidationError

        try:
            return func(args)
        except ValidationError as exc:
            _usage(_validation_message(exc))
        except (MirrorNotFound, MirrorExists) as exc:
            _fail(str(exc).replace(repr(exc.mirror_id), exc.mirror_id))
        except MirrorError as exc:  # bad input, or TransientError from the store or the queue
            if exit_for_error(exc) == EXIT_USAGE:
                _usage(str(exc))
            _fail(str(exc))
        except (BotoCoreError, ClientError) as exc:
            _fail(_aws_message(exc))

    return run


# --- argument types ---------------------------------------------------------------------------------


def _mirror_id(value: str) -> str:
    if not MIRROR_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(
            "id must be 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
        )
    return value


def _repo_id(value: str) -> str:
    if not value.isdigit() or len(value) > 20:
        raise argparse.ArgumentTypeError(f"expected the repository's numeric id, got {value!r}")
    return value


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= 1000:
        raise argparse.ArgumentTypeError("must be between 1 and 1000")
    return number


# --- plumbing ---------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> CliSettings:
    from gitmirror.settings import CliSettings, load

    settings = load(CliSettings)
    overrides = {
        "mirrors_table": args.mirrors_table,
        "runs_table": args.runs_table,
        "queue_url": args.queue_url,
    }
    return settings.model_copy(update={k: v for k, v in overrides.items() if v})


def _store(settings: CliSettings) -> MirrorStore:
    from gitmirror.adapters.aws.mirror_table import MirrorStore

    return MirrorStore(settings.mirrors_table, settings.runs_table)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    return value


def _emit_json(payload: object) -> None:
    print(json.dumps(_scrubbed(payload), indent=2, sort_keys=False))


# --- human-readable output --------------------------------------------------------------------------


def _arrow() -> str:
    try:
        "→".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "->"
    return "→"


def relative_time(value: str | None, now: dt.datetime, empty: str = "-") -> str:
    """An ISO timestamp as a human reads a status table: "just now", "3 min ago", "2 h ago", "5 days ago"."""
    if not value:
        return empty
    try:
        seconds = (now - parse_iso(value)).total_seconds()
    except ValueError:
        return value
    if seconds < 10:
        return "just now"
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if unit == 'day' and count != 1 else ''} ago"
    return f"{int(seconds)} s ago"


def _first_line(text: str | None, width: int = ERROR_WIDTH) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def status_text(mirror: Mirror, now: dt.datetime) -> str:
    if mirror.is_stuck(now):
        text = STUCK_TEXT
    else:
        text = mirror.update_status.value
        if mirror.result and mirror.result != RunStatus.SUCCESS and mirror.result.value != text:
            text += f" ({mirror.result.value})"
    if not mirror.enabled:
        text += " [disabled]"
    return text


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *rows]:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def mirrors_table(mirrors: Sequence[Mirror], now: dt.datetime) -> str:
    if not mirrors:
        return "no mirrors"
    arrow = _arrow()
    rows = [
        [
            m.id,
            f"{m.source_url} {arrow} {m.url}",
            status_text(m, now),
            relative_time(m.last_successful_update_at, now, "never"),
            _first_line(m.last_error),
        ]
        for m in mirrors
    ]
    return _table(["ID", f"SOURCE {arrow} TARGET", "STATUS", "LAST SUCCESS", "LAST ERROR"], rows)


def mirror_details(mirror: Mirror, now: dt.datetime) -> str:
    """Every public field, one per line."""
    data = mirror.public()
    labels = {"url": "target url", "update_status": "status", "mirror_branch_regex": "branch regex"}
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        label = labels.get(key, key.replace("_", " "))
        if key == "update_status":
            text = status_text(mirror, now)
        elif key.endswith("_at") and isinstance(value, str) and value:
            text = f"{value} ({relative_time(value, now)})"
        elif key == "last_successful_update_at":
            text = "never"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value) if value else "-"
        elif value is None or value == "":
            text = "-"
        else:
            text = str(value)
        rows.append((label, text))
    width = max(len(label) for label, _ in rows) + 1
    lines = []
    for label, text in rows:
        first, *more = text.splitlines() or [""]
        lines.append(f"{label + ':':<{width}} {first}")
        lines.extend(f"{'':<{width}} {line}" for line in more)
    return "\n".join(lines)


def _duration(run: RunRecord) -> str:
    if not run.finished_at and not run.duration_ms:
        return "-"
    seconds = run.duration_ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _changed(run: RunRecord) -> int:
    counted = run.refs_created + run.refs_updated + run.refs_deleted
    if counted or run.refs_truncated:
        return counted
    return sum(1 for r in run.refs if r.action in _CHANGED)  # a run recorded before the counts


def runs_table(runs: Sequence[RunRecord]) -> str:
    if not runs:
        return "no runs"
    rows = [
        [
            run.run_id,
            run.trigger.value + (" (dry run)" if run.dry_run else ""),
            run.result.value if run.result else run.update_status.value,
            _duration(run),
            str(_changed(run)),
            _first_line(run.error),
        ]
        for run in runs
    ]
    return _table(["RUN ID", "TRIGGER", "STATUS", "DURATION", "REFS CHANGED", "ERROR"], rows)


def _print(text: str) -> None:
    print(scrub(text))


# --- commands ---------------------------------------------------------------------------------------


_SECRET_FLAGS = {
    "source_secret": "--source-secret",
    "target_secret": "--target-secret",
    "webhook_secret": "--webhook-secret",
    "lfs_source_secret": "--lfs-source-secret",
    "lfs_target_secret": "--lfs-target-secret",
}
# what each secret holds, for the create-secret command an error suggests
_SECRET_VALUES = {
    "source_secret": '\'{"username": "oauth2", "token": "..."}\'',
    "target_secret": '\'{"username": "x-access-token", "token": "..."}\'',
    "webhook_secret": '"$(openssl rand -hex 32)"',
    "lfs_source_secret": '\'{"username": "oauth2", "token": "..."}\'',
    "lfs_target_secret": '\'{"username": "x-access-token", "token": "..."}\'',
}


def _check_url_flag(flag: str, value: str, settings: CliSettings) -> None:
    """The URL checks of `create_mirror`, reported against the flag the user typed, with the fix."""
    from gitmirror.manage.mirrors import check_remote_url
    from gitmirror.mirror.urls import missing_scheme_hint

    hint = missing_scheme_hint(value)
    if hint and not settings.policy.allow_local_paths:
        _usage(f"{flag} {value!r} has no scheme: add https:// ({flag} {hint})")
    try:
        check_remote_url(value, settings.policy, "the URL")
    except UsageError as exc:
        fix = f" ({flag} https://{value[7:]})" if value.lower().startswith("http://") else ""
        _usage(f"{flag}: {exc}{fix if 'https://' in str(exc) else ''}")


def _check_secret_flags(
    names: dict[str, str | None], settings: CliSettings, *, missing_is_a_warning: bool = False
) -> None:
    """Refuse secret names outside the prefix, or that Secrets Manager does not have (the worker
    would fail on every run, the receiver refuse every delivery); `missing_is_a_warning`
    (`--no-verify-secrets`) only warns about the latter. When the check itself cannot be made (no
    permission to describe secrets), say so and go on."""
    from botocore.exceptions import BotoCoreError, ClientError

    from gitmirror.adapters.aws import clients
    from gitmirror.records import check_secret_prefix

    for field, name in names.items():
        try:
            check_secret_prefix(name, settings.secrets_prefix)
        except UsageError as exc:
            _usage(f"{_SECRET_FLAGS[field]}: {exc}")
    given = {field: name for field, name in names.items() if name}
    if not given:
        return
    client = clients.client("secretsmanager")
    for field, name in given.items():
        flag = _SECRET_FLAGS[field]
        try:
            client.describe_secret(SecretId=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code != "ResourceNotFoundException":
                warn(f"could not check that {flag} {name} exists ({code or exc}); using it as given")
                continue
            message = (
                f"{flag}: there is no secret {name!r} in Secrets Manager; create it first: "
                f"aws secretsmanager create-secret --name {name} --secret-string {_SECRET_VALUES[field]}"
            )
            if not missing_is_a_warning:
                _usage(message)
            warn(message)
        except BotoCoreError as exc:
            _fail(_aws_message(exc))


def _check_add_flags(args: argparse.Namespace, settings: CliSettings) -> None:
    """What `create_mirror` would refuse, named by flag; plus the webhook secret every mirror needs."""
    _check_url_flag("--source-url", args.source_url, settings)
    _check_url_flag("--url", args.url, settings)
    if not (args.source_repo_id or args.source_full_name):
        _usage(
            "give --source-repo-id or --source-full-name so webhooks can find this mirror "
            "(e.g. --source-full-name acme/app)"
        )
    if args.auth_method == "password" and not args.target_secret:
        _usage(
            "--target-secret NAME is required with --auth-method password (the default): the Secrets "
            "Manager secret with the target's credentials; or --auth-method iam for CodeCommit"
        )
    if args.auth_method == "iam":
        from gitmirror.mirror.credentials import is_codecommit
        from gitmirror.mirror.urls import parse_remote

        if not is_codecommit(parse_remote(args.url)):
            _usage("--auth-method iam needs a --url on git-codecommit.<region>.amazonaws.com")
    if not args.webhook_secret:
        _usage(
            "--webhook-secret NAME is required: without it every push webhook for this mirror is refused "
            "(401); store a random string first: aws secretsmanager create-secret --name "
            f'{settings.secrets_prefix}{args.id or "NAME"}/webhook --secret-string "$(openssl rand -hex 32)"'
        )


@_guarded
def cmd_add(args: argparse.Namespace) -> int:
    from gitmirror.manage.mirrors import create_mirror
    from gitmirror.records import MirrorSpec

    fields: dict[str, Any] = {
        "id": args.id,
        "source_url": args.source_url,
        "url": args.url,
        "provider": args.provider,
        "source_repo_id": args.source_repo_id,
        "source_full_name": args.source_full_name,
        "keep_divergent_refs": args.keep_divergent_refs,
        "branch_filters": args.branch_filter,
        "mirror_branch_regex": args.branch_regex,
        "auth_method": args.auth_method,
        "source_secret": args.source_secret,
        "target_secret": args.target_secret,
        "webhook_secret": args.webhook_secret,
        "lfs_source_secret": args.lfs_source_secret,
        "lfs_target_secret": args.lfs_target_secret,
        "max_push_bytes": args.max_push_bytes,
        "enabled": False if args.disabled else None,
        "lfs": False if args.no_lfs else None,
    }
    spec = MirrorSpec(**{k: v for k, v in fields.items() if v is not None})
    settings = _settings(args)
    _check_add_flags(args, settings)
    _check_secret_flags(
        {k: getattr(args, k) for k in _SECRET_FLAGS}, settings, missing_is_a_warning=args.no_verify_secrets
    )
    mirror = create_mirror(spec, _store(settings), settings.policy, settings.secrets_prefix)
    now = utcnow()
    if args.json:
        _emit_json(mirror.public(now))
    else:
        _print(f"created mirror {mirror.id}\n\n{mirror_details(mirror, now)}")
    return EXIT_OK


def _normalized_source(url: str) -> str:
    """Source URLs as the same repository: scheme and host case, a trailing slash or `.git` aside."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/").removesuffix(".git").rstrip("/")
    return f"{parts.scheme.lower()}://{(parts.netloc or '').lower()}{path}"


def _list(args: argparse.Namespace) -> int:
    mirrors = _store(_settings(args)).list_mirrors()
    source = getattr(args, "source", None)
    repo_id = getattr(args, "source_repo_id", None)
    if source:
        wanted = _normalized_source(source)
        mirrors = [m for m in mirrors if _normalized_source(m.source_url) == wanted]
    if repo_id:
        mirrors = [m for m in mirrors if m.source_repo_id == repo_id]
    now = utcnow()
    if args.json:
        _emit_json({"mirrors": [m.public(now) for m in mirrors]})
    else:
        _print(mirrors_table(mirrors, now))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from gitmirror.adapters.aws.mirror_table import MirrorNotFound

    mirror = _store(_settings(args)).get(args.mirror_id)
    if mirror is None:
        raise MirrorNotFound(args.mirror_id)
    now = utcnow()
    if args.json:
        _emit_json(mirror.public(now))
    else:
        _print(mirror_details(mirror, now))
    return EXIT_OK


cmd_list = _guarded(_list)
cmd_show = _guarded(_show)


@_guarded
def cmd_status(args: argparse.Namespace) -> int:
    return _show(args) if args.mirror_id else _list(args)


@_guarded
def cmd_update(args: argparse.Namespace) -> int:
    from gitmirror.manage.mirrors import update_mirror
    from gitmirror.records import MirrorSettings

    if args.immutable_url is not None or args.immutable_source_url is not None:
        raise UsageError("a mirror's urls cannot be changed: delete the mirror and add a new one")
    changes: dict[str, Any] = {}
    if args.enabled is not None:
        changes["enabled"] = args.enabled
    if args.keep_divergent_refs is not None:
        changes["keep_divergent_refs"] = args.keep_divergent_refs
    if args.clear_branch_filters:
        changes["branch_filters"] = []
    elif args.branch_filter:
        changes["branch_filters"] = args.branch_filter
    if args.clear_branch_regex:
        changes["mirror_branch_regex"] = None
    elif args.branch_regex is not None:
        changes["mirror_branch_regex"] = args.branch_regex
    if args.lfs is not None:
        changes["lfs"] = args.lfs
    for name in _SECRET_FLAGS:
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.clear_max_push_bytes:
        changes["max_push_bytes"] = None
    elif args.max_push_bytes is not None:
        changes["max_push_bytes"] = args.max_push_bytes
    if not changes:
        raise UsageError("nothing to change: give at least one option (see gitmirror mirrors update --help)")
    settings = _settings(args)
    MirrorSettings(**changes)  # bad values are usage errors before anything is looked up
    _check_secret_flags({k: changes.get(k) for k in _SECRET_FLAGS}, settings)
    mirror = update_mirror(
        args.mirror_id, MirrorSettings(**changes), _store(settings), settings.secrets_prefix
    )
    now = utcnow()
    if args.json:
        _emit_json(mirror.public(now))
    else:
        _print(f"updated mirror {mirror.id}\n\n{mirror_details(mirror, now)}")
    return EXIT_OK


@_guarded
def cmd_delete(args: argparse.Namespace) -> int:
    _store(_settings(args)).delete(args.mirror_id)
    if args.json:
        _emit_json({"deleted": args.mirror_id})
    else:
        _print(f"deleted mirror {args.mirror_id}")
    return EXIT_OK


@_guarded
def cmd_sync(args: argparse.Namespace) -> int:
    from gitmirror.adapters.aws.queue import SqsJobQueue
    from gitmirror.manage.mirrors import request_sync
    from gitmirror.values import Trigger

    settings = _settings(args)
    if not settings.queue_url:
        raise UsageError("no sync queue configured: set QUEUE_URL or pass --queue-url")
    queue = SqsJobQueue(settings.queue_url)
    outcome = request_sync(args.mirror_id, _store(settings), queue, Trigger.MANUAL, dry_run=args.dry_run)
    if args.json:
        reply: dict[str, object] = {
            "mirror": args.mirror_id,
            "queued": outcome.queued,
            "reason": outcome.reason,
        }
        if args.dry_run:
            reply["dry_run"] = True
        _emit_json(reply)
    elif args.dry_run:
        _print(
            f"queued a dry run of {args.mirror_id}: nothing is pushed; its plan will be in "
            f"`gitmirror runs {args.mirror_id}`"
        )
    elif outcome.queued:
        _print(f"queued a sync of {args.mirror_id}")
    else:
        _print(f"not queued: {outcome.reason} for {args.mirror_id}")
    return EXIT_OK


@_guarded
def cmd_runs(args: argparse.Namespace) -> int:
    from gitmirror.adapters.aws.mirror_table import MirrorNotFound

    store = _store(_settings(args))
    if args.run is not None:
        # one run with every per-ref result (a big run's item holds only the first ones)
        one = store.get_run(args.mirror_id, args.run)
        if one is None:
            return _fail(f"no run {args.run} of mirror {args.mirror_id}")
        runs = [one.model_copy(update={"refs": store.run_refs(one), "refs_truncated": 0})]
    else:
        runs = store.list_runs(args.mirror_id, limit=args.limit)
    # history outlives a deleted mirror (until its TTL); only an id with neither is unknown
    if not runs and store.get(args.mirror_id) is None:
        raise MirrorNotFound(args.mirror_id)
    if args.json:
        _emit_json({"runs": [run.model_dump(mode="json") for run in runs]})
    else:
        _print(runs_table(runs))
        if args.run is not None:
            _print(
                "\n".join(
                    f"{r.action.value:<14} {r.ref}" + (f"  {r.error}" if r.error else "")
                    for r in runs[0].refs
                )
            )
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print exactly one JSON document")
    aws = common.add_argument_group("service location (default: the Lambdas' environment variables)")
    aws.add_argument("--mirrors-table", metavar="NAME", help="mirrors table (default: $MIRRORS_TABLE)")
    aws.add_argument("--runs-table", metavar="NAME", help="runs table (default: $RUNS_TABLE)")
    aws.add_argument("--queue-url", metavar="URL", help="sync queue URL (default: $QUEUE_URL)")
    return common


def _id_arg(parser: argparse.ArgumentParser, *, optional: bool = False) -> None:
    parser.add_argument(
        "mirror_id", metavar="ID", type=_mirror_id, nargs="?" if optional else None, help="mirror id"
    )


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source-url", required=True, metavar="URL", help="https:// URL to fetch from")
    parser.add_argument(
        "--url", required=True, metavar="URL", help="https:// URL to push to (immutable, no credentials)"
    )
    parser.add_argument(
        "--provider", required=True, choices=[p.value for p in Provider], help="who sends the push webhooks"
    )
    parser.add_argument("--source-repo-id", metavar="N", help="the source repository's numeric id")
    parser.add_argument("--source-full-name", metavar="NAME", help="the source repository's path, owner/name")
    parser.add_argument(
        "--id",
        type=_mirror_id,
        metavar="ID",
        help="mirror id, as `status ID` and DynamoDB use it (default: the source's name + a random suffix)",
    )
    parser.add_argument(
        "--keep-divergent-refs",
        action="store_true",
        default=None,
        help="never overwrite diverged target refs",
    )
    parser.add_argument(
        "--branch-filter",
        action="append",
        metavar="PATTERN",
        help="mirror only branches matching; '*' matches anything (repeatable)",
    )
    parser.add_argument("--branch-regex", metavar="REGEX", help="mirror only branches fully matching REGEX")
    parser.add_argument(
        "--auth-method",
        choices=[m.value for m in AuthMethod],
        default="password",
        help="how the worker authenticates to the target (default: password; github_app: the target "
        "secret holds a GitHub App's app_id, installation_id and private_key)",
    )
    parser.add_argument("--source-secret", metavar="NAME", help="Secrets Manager secret for the source")
    parser.add_argument("--target-secret", metavar="NAME", help="Secrets Manager secret for the target")
    parser.add_argument(
        "--webhook-secret",
        metavar="NAME",
        help="Secrets Manager secret verifying webhooks (required; it must exist)",
    )
    parser.add_argument(
        "--max-push-bytes",
        type=SIZE,
        metavar="SIZE",
        help="no push larger than SIZE (K, M, G: powers of 1024; default: the target host's known limit)",
    )
    parser.add_argument("--disabled", action="store_true", help="create the mirror disabled")
    parser.add_argument(
        "--no-verify-secrets",
        action="store_true",
        help="create the mirror even when a named secret does not exist yet (a warning instead of an error)",
    )
    parser.add_argument(
        "--no-lfs", action="store_true", help="do not mirror Git LFS objects (only the pointer files)"
    )
    _lfs_secret_options(parser)


def _lfs_secret_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lfs-source-secret",
        metavar="NAME",
        help="secret for the source's LFS server (default: the source's)",
    )
    parser.add_argument(
        "--lfs-target-secret",
        metavar="NAME",
        help="secret for the target's LFS server (default: the target's)",
    )


def _update_options(parser: argparse.ArgumentParser) -> None:
    # GitLab: a mirror's URLs are immutable; accepted only to explain that
    for flag in ("--url", "--source-url"):
        parser.add_argument(flag, dest="immutable_" + flag[2:].replace("-", "_"), help=argparse.SUPPRESS)
    enabled = parser.add_mutually_exclusive_group()
    enabled.add_argument(
        "--enable", dest="enabled", action="store_const", const=True, help="enable the mirror"
    )
    enabled.add_argument(
        "--disable",
        dest="enabled",
        action="store_const",
        const=False,
        help="disable the mirror: webhooks and schedules no longer queue runs",
    )
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument(
        "--keep-divergent-refs",
        dest="keep_divergent_refs",
        action="store_const",
        const=True,
        help="never overwrite diverged target refs: skip and report them",
    )
    keep.add_argument(
        "--no-keep-divergent-refs",
        dest="keep_divergent_refs",
        action="store_const",
        const=False,
        help="overwrite diverged target refs (GitLab's default)",
    )
    filters = parser.add_mutually_exclusive_group()
    filters.add_argument(
        "--branch-filter", action="append", metavar="PATTERN", help="replace the branch filters (repeatable)"
    )
    filters.add_argument("--clear-branch-filters", action="store_true", help="mirror every branch again")
    regex = parser.add_mutually_exclusive_group()
    regex.add_argument("--branch-regex", metavar="REGEX", help="replace the branch regex")
    regex.add_argument("--clear-branch-regex", action="store_true", help="remove the branch regex")
    parser.add_argument("--source-secret", metavar="NAME", help="Secrets Manager secret for the source")
    parser.add_argument("--target-secret", metavar="NAME", help="Secrets Manager secret for the target")
    parser.add_argument("--webhook-secret", metavar="NAME", help="Secrets Manager secret verifying webhooks")
    lfs = parser.add_mutually_exclusive_group()
    lfs.add_argument("--lfs", dest="lfs", action="store_const", const=True, help="mirror Git LFS objects")
    lfs.add_argument(
        "--no-lfs", dest="lfs", action="store_const", const=False, help="stop mirroring LFS objects"
    )
    _lfs_secret_options(parser)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--max-push-bytes", type=SIZE, metavar="SIZE", help="no push larger than SIZE")
    size.add_argument(
        "--clear-max-push-bytes", action="store_true", help="use the target host's known limit again"
    )


def register(sub: Any) -> None:
    """Add `mirrors`, `status` and `runs` to the top-level subparsers of `gitmirror`."""
    common = _common()

    def leaf(group: Any, name: str, help_text: str, func: Command) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = group.add_parser(
            name, help=help_text, description=help_text, parents=[common], allow_abbrev=False
        )
        parser.set_defaults(func=func)
        return parser

    mirrors = sub.add_parser(
        "mirrors", help="manage the service's mirrors", description="Manage the service's mirrors."
    )
    actions = mirrors.add_subparsers(
        dest="action",
        metavar="ACTION",
        required=True,
        parser_class=type(mirrors),
        help="`gitmirror mirrors ACTION --help` describes each",
    )
    _add_options(leaf(actions, "add", "register a new mirror", cmd_add))
    listing = leaf(
        actions, "list", "list the mirrors with their status (all, or those of one source)", cmd_list
    )
    listing.add_argument(
        "--source", metavar="URL", help="only the mirrors of this source URL (a trailing .git or / aside)"
    )
    listing.add_argument(
        "--source-repo-id", type=_repo_id, metavar="N", help="only the mirrors of this numeric source id"
    )
    _id_arg(leaf(actions, "show", "show every field of one mirror", cmd_show))
    _update_options(parser := leaf(actions, "update", "change a mirror's settings (not its url)", cmd_update))
    _id_arg(parser)
    _id_arg(leaf(actions, "delete", "delete a mirror", cmd_delete))
    _id_arg(
        parser := leaf(
            actions, "sync", "update now: queue a sync unless one is scheduled or running", cmd_sync
        )
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="queue a dry run instead: the worker records the plan in a run record and pushes nothing",
    )

    _id_arg(leaf(sub, "status", "status of all mirrors, or every field of one", cmd_status), optional=True)
    runs = leaf(sub, "runs", "recent runs of one mirror, newest first", cmd_runs)
    _id_arg(runs)
    runs.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)")
    runs.add_argument("--run", metavar="RUN_ID", help="only this run, with every per-ref result")
