"""The command line's conventions: --version, a description for every command and help for every flag,
--json outcomes (errors included) as one JSON object with the documented exit code, errors that name
the flag typed and suggest the fix, `mirrors list` filters and relative times in `status`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from gitmirror.values import iso, utcnow
from gitmirror_cli.main import build_parser, main
from tests.conftest import AwsEnv
from tests.support.service import all_items, store

GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))
SOURCE = "https://github.com/acme/app.git"
TARGET = "https://git.example.com/mirrors/app.git"
SECRETS = {"source": "gitmirror/acme-app/source", "target": "gitmirror/acme-app/target"}
WEBHOOK = "gitmirror/acme-app/webhook"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [GITMIRROR, *args], env=env or dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`main` in this process (no interpreter start-up): for the many cases that differ only in argv."""
    code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["gitmirror", *args], code, captured.out, captured.err)


def json_outcome(proc: subprocess.CompletedProcess[str], code: int) -> dict[str, Any]:
    """Exactly one JSON object on stdout and the exit code it names."""
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    out = json.loads(proc.stdout)  # one document: json.loads refuses trailing data
    assert isinstance(out, dict)
    return out


def json_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    out = json_outcome(proc, code)
    assert set(out) == {"error", "exit_code"} and out["exit_code"] == code, out
    assert "\n" not in out["error"] and out["error"]
    return str(out["error"])


def error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitmirror: error: "), proc.stderr
    return lines[0]


def add_args(*extra: str, webhook: str | None = WEBHOOK) -> list[str]:
    args = [
        "mirrors", "add", "--id", "acme-app", "--provider", "github", "--source-repo-id", "123456",
        "--source-url", SOURCE, "--url", TARGET,
        "--source-secret", SECRETS["source"], "--target-secret", SECRETS["target"],
    ]  # fmt: skip
    if webhook:
        args += ["--webhook-secret", webhook]
    return args + list(extra)


@pytest.fixture
def secrets(aws: AwsEnv) -> AwsEnv:
    for name in (*SECRETS.values(), WEBHOOK):
        aws.put_secret(name, "x")
    return aws


# --- version and help --------------------------------------------------------------------------------


def test_version_plain_and_json() -> None:
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout == f"gitmirror {version('gitmirror')}\n"
    assert json_outcome(cli("--version", "--json"), 0) == {"version": version("gitmirror")}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    found = [(" ".join(path) or "gitmirror", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, (*path, name))
    return found


def test_every_command_has_a_description_and_every_flag_help() -> None:
    commands = _commands(build_parser())
    names = {name for name, _ in commands}
    for expected in (
        "sync", "serve", "events", "demo", "local up", "local init", "status", "runs",
        "mirrors add", "mirrors list", "mirrors show", "mirrors update", "mirrors delete", "mirrors sync",
    ):  # fmt: skip
        assert expected in names
    for name, parser in commands:
        assert parser.description and len(parser.description) > 10, name
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue  # hidden on purpose (mirrors update --url: accepted only to explain why not)
            assert action.help and action.help.strip(), (name, action.option_strings or action.dest)
    # and the help lists each subcommand with its one-line summary
    top = cli("--help").stdout
    for command in ("sync", "mirrors", "status", "runs", "serve", "local", "events", "demo"):
        assert f"    {command} " in top or f"    {command}\n" in top, top


# --- --json: every outcome is one JSON object ------------------------------------------------------------

USAGE_ERRORS = [
    (["--json"], "required: COMMAND"),
    (["nonsense", "--json"], "invalid choice"),
    (["sync", "--json"], "required: SOURCE, TARGET"),
    (["sync", "ssh://git@example.com/r.git", "/tmp/x", "--json"], "SOURCE: only http(s)://"),
    (["sync", "/tmp/a", "/tmp/b", "--branch-regex", "(", "--json"], "--branch-regex: invalid branch regex"),
    (["mirrors", "--json"], "required: ACTION"),
    (["mirrors", "add", "--json"], "required"),
    (["mirrors", "list", "--source-repo-id", "abc", "--json"], "--source-repo-id"),
    (["mirrors", "show", "../etc", "--json"], "argument ID"),
    (["mirrors", "update", "app", "--json"], "nothing to change"),
    (["mirrors", "delete", "--json"], "required: ID"),
    (["mirrors", "sync", "Bad!", "--json"], "argument ID"),
    (["status", "Bad!", "--json"], "argument ID"),
    (["runs", "app", "--limit", "0", "--json"], "--limit"),
    (["serve", "--port", "x", "--json"], "--port"),
    (["local", "--json"], "required: ACTION"),
    (["local", "up", "--sample", "nope", "--json"], "--sample"),
    (["local", "init", "--bogus", "--json"], "unrecognized arguments"),
    (["events", "--json"], "--secret"),
    (["demo", "--sample", "nope", "--json"], "--sample"),
]


@pytest.mark.parametrize(("args", "needle"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors_with_json_are_one_json_object_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    proc = in_process(capsys, *args)
    assert needle in json_error(proc, 2)
    assert proc.stderr.startswith("gitmirror: error: ")  # the human still gets the line


def test_usage_error_through_the_console_script(aws: AwsEnv) -> None:
    proc = cli("mirrors", "add", "--source-url", SOURCE, "--json")
    assert "the following arguments are required" in json_error(proc, 2)
    assert proc.stderr == f"gitmirror: error: {json.loads(proc.stdout)['error']}\n"
    assert "required: SOURCE" in error_line(cli("sync"), 2)
    assert all_items(aws.env["MIRRORS_TABLE"]) == []


@pytest.mark.parametrize(
    "args",
    [
        ["mirrors", "show", "ghost"],
        ["mirrors", "update", "ghost", "--enable"],
        ["mirrors", "delete", "ghost"],
        ["mirrors", "sync", "ghost"],
        ["status", "ghost"],
        ["runs", "ghost"],
    ],
)
def test_failures_with_json_are_one_json_object_exit_1(
    aws: AwsEnv, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    assert json_error(in_process(capsys, *args, "--json"), 1) == "no mirror with id ghost"
    assert error_line(in_process(capsys, *args), 1) == "gitmirror: error: no mirror with id ghost"


def test_unreachable_aws_and_failed_sync_with_json(aws: AwsEnv, tmp_path: Path) -> None:
    dead = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
    assert "cannot reach AWS" in json_error(cli("status", "--json", env=dead), 1)
    assert "cannot reach AWS" in json_error(cli("local", "init", "--json", env=dead), 1)
    # a sync that ran and failed keeps its documented document (status, refs, error), exit 1
    out = json_outcome(cli("sync", str(tmp_path / "absent.git"), str(tmp_path / "b.git"), "--json"), 1)
    # (a failed run also says why and what to do: reason_code and hint, issue 17)
    assert set(out) == {
        "status",
        "divergent_refs",
        "refs",
        "error",
        "remaining_refs",
        "lfs",
        "reason_code",
        "hint",
    }
    assert out["status"] == "failed"
    assert "not found" in out["error"]


# --- errors name the flag and suggest the fix ------------------------------------------------------


def test_mirrors_add_names_the_flags_and_suggests_fixes(secrets: AwsEnv) -> None:
    missing_id = [a for a in add_args() if a not in ("--source-repo-id", "123456")]
    line = error_line(cli(*missing_id), 2)
    assert "give --source-repo-id or --source-full-name" in line and "source_repo_id" not in line

    schemeless = add_args()
    schemeless[schemeless.index(SOURCE)] = "github.com/acme/app"
    line = error_line(cli(*schemeless), 2)
    assert "--source-url" in line and "add https://" in line and "https://github.com/acme/app" in line
    assert "local paths" not in line
    target_schemeless = add_args()
    target_schemeless[target_schemeless.index(TARGET)] = "git.example.com/mirrors/app.git"
    assert "--url 'git.example.com/mirrors/app.git' has no scheme" in error_line(cli(*target_schemeless), 2)

    insecure = add_args()
    insecure[insecure.index(SOURCE)] = "http://github.com/acme/app.git"
    line = error_line(cli(*insecure, env=dict(os.environ, ALLOW_INSECURE_HTTP="false")), 2)
    assert line.endswith(
        "--source-url: repository URLs must use https:// (--source-url https://github.com/acme/app.git)"
    )
    with_credentials = add_args()
    with_credentials[with_credentials.index(TARGET)] = "https://u:pw-canary@git.example.com/app.git"
    line = error_line(cli(*with_credentials), 2)
    assert "--url: the URL must not contain credentials" in line and "pw-canary" not in line

    line = error_line(cli(*add_args(webhook=None)), 2)
    assert "--webhook-secret NAME is required" in line and "401" in line
    assert "aws secretsmanager create-secret" in line

    absent = add_args(webhook="gitmirror/acme-app/no-such-webhook")
    assert (
        "--webhook-secret: there is no secret 'gitmirror/acme-app/no-such-webhook' in Secrets Manager; "
        "create it first: aws secretsmanager create-secret --name gitmirror/acme-app/no-such-webhook"
    ) in json_error(cli(*absent, "--json"), 2)
    absent_source = add_args()
    absent_source[absent_source.index(SECRETS["source"])] = "gitmirror/acme-app/nope"
    assert "--source-secret: there is no secret" in error_line(cli(*absent_source), 2)
    password = [a for a in add_args() if a not in ("--target-secret", SECRETS["target"])]
    assert "--target-secret NAME is required with --auth-method password" in error_line(cli(*password), 2)
    assert "--auth-method iam needs a --url on git-codecommit" in error_line(
        cli(*add_args("--auth-method", "iam")), 2
    )
    assert all_items(secrets.env["MIRRORS_TABLE"]) == []  # nothing half-written

    created = json_outcome(cli(*add_args(), "--json"), 0)
    assert created["id"] == "acme-app" and created["webhook_secret"] == WEBHOOK


def test_mirrors_update_refuses_a_secret_that_does_not_exist(secrets: AwsEnv) -> None:
    assert cli(*add_args()).returncode == 0
    before = store().raw("acme-app")
    line = error_line(cli("mirrors", "update", "acme-app", "--webhook-secret", "gitmirror/acme-app/gone"), 2)
    assert "--webhook-secret: there is no secret 'gitmirror/acme-app/gone'" in line
    assert store().raw("acme-app") == before


def test_sync_suggests_https_for_a_url_without_scheme(tmp_path: Path) -> None:
    line = error_line(cli("sync", "github.com/acme/app", str(tmp_path)), 2)
    assert "SOURCE" in line and "did you mean https://github.com/acme/app" in line
    # an existing local directory with such a name is a local path, as documented
    (tmp_path / "host.example" / "repo").mkdir(parents=True)
    proc = subprocess.run(
        [GITMIRROR, "sync", "host.example/repo", str(tmp_path / "b"), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "did you mean" not in proc.stdout  # a failed run, not a usage error


# --- listing by source, relative times --------------------------------------------------------------


def test_mirrors_list_filters_by_source_url_and_repo_id(
    secrets: AwsEnv, capsys: pytest.CaptureFixture[str]
) -> None:
    assert in_process(capsys, *add_args()).returncode == 0
    other = add_args("--id", "acme-lib")
    other[other.index(SOURCE)] = "https://gitlab.com/acme/lib"
    other[other.index("123456")] = "777"
    assert in_process(capsys, *other).returncode == 0
    second_target = add_args("--id", "acme-app-2")
    second_target[second_target.index(TARGET)] = TARGET + "2"
    assert in_process(capsys, *second_target).returncode == 0

    def ids(*args: str) -> list[str]:
        proc = in_process(capsys, "mirrors", "list", *args, "--json")
        return [m["id"] for m in json_outcome(proc, 0)["mirrors"]]

    assert ids() == ["acme-app", "acme-app-2", "acme-lib"]
    assert ids("--source", SOURCE) == ["acme-app", "acme-app-2"]
    assert ids("--source", "HTTPS://GitHub.com/acme/app/") == ["acme-app", "acme-app-2"]  # .git, / and case
    assert ids("--source-repo-id", "777") == ["acme-lib"]
    assert ids("--source", SOURCE, "--source-repo-id", "777") == []
    table = cli("mirrors", "list", "--source-repo-id", "123456").stdout.splitlines()
    assert [row.split()[0] for row in table[1:]] == ["acme-app", "acme-app-2"]


def test_status_table_shows_relative_times_json_keeps_iso(secrets: AwsEnv) -> None:
    assert cli(*add_args()).returncode == 0
    s = store()
    three_minutes_ago = iso(utcnow() - dt.timedelta(minutes=3, seconds=5))
    assert s.acquire_lease("acme-app", "run-1", 900)
    assert s.finish(
        "acme-app",
        "run-1",
        {"update_status": "finished", "result": "success", "last_successful_update_at": three_minutes_ago},
    )
    row = cli("status").stdout.splitlines()[1]
    assert " 3 min ago" in row and three_minutes_ago not in row
    assert json_outcome(cli("status", "--json"), 0)["mirrors"][0]["last_successful_update_at"] == (
        three_minutes_ago
    )
    details = cli("status", "acme-app").stdout
    assert f"{three_minutes_ago} (3 min ago)" in details
    assert json_outcome(cli("status", "acme-app", "--json"), 0)["last_successful_update_at"] == (
        three_minutes_ago
    )
