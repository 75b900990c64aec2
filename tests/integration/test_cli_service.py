"""`gitmirror mirrors|status|runs` as a user runs them: the real console script against moto server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gitmirror.records import INTERNAL_FIELDS, Mirror, RunRecord
from gitmirror.settings import CliSettings, load
from gitmirror.values import Action, RefUpdate, RunStatus, Trigger, UpdateStatus, iso, utcnow
from tests.conftest import AwsEnv
from tests.support.service import all_items, store

GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))
CANARY = "secret-canary-4e1d"
SOURCE = "https://github.com/acme/app.git"
TARGET = "https://git.example.com/mirrors/app.git"
PUBLIC_KEYS = set(Mirror.model_fields) - INTERNAL_FIELDS  # "stuck" appears only for stuck runs


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [GITMIRROR, *args], env=env or dict(os.environ), capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert CANARY not in proc.stdout + proc.stderr
    return proc


def ok_json(*args: str) -> Any:
    proc = cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def json_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """--json: the outcome is one JSON object on stdout with the exit code; the line is on stderr too."""
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    out = json.loads(proc.stdout)
    assert set(out) == {"error", "exit_code"} and out["exit_code"] == code
    assert proc.stderr == f"gitmirror: error: {out['error']}\n"
    return str(out["error"])


@pytest.fixture(autouse=True)
def secrets(aws: AwsEnv) -> None:
    """The secrets the mirrors below name: `mirrors add` refuses names Secrets Manager does not have."""
    for name in ("source", "target", "webhook", "s2"):
        aws.put_secret(f"gitmirror/app/{name}", "x")


def one_error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitmirror: error: "), proc.stderr
    assert proc.stdout == ""
    return lines[0]


def add_args(mirror_id: str, *extra: str) -> list[str]:
    return [
        "mirrors",
        "add",
        "--id",
        mirror_id,
        "--source-url",
        SOURCE,
        "--url",
        TARGET,
        "--provider",
        "github",
        "--source-repo-id",
        "4242",
        "--target-secret",
        "gitmirror/app/target",
        "--webhook-secret",
        "gitmirror/app/webhook",
        *extra,
    ]


def mirrors_table() -> str:
    return load(CliSettings).mirrors_table


def test_add_list_show_status_delete(aws: AwsEnv) -> None:
    out = ok_json(
        *add_args(
            "acme-app",
            "--source-full-name",
            "acme/app",
            "--keep-divergent-refs",
            "--branch-filter",
            "main",
            "--branch-filter",
            "release/*",
            "--branch-regex",
            "v[0-9]+",
            "--source-secret",
            "gitmirror/app/source",
            "--webhook-secret",
            "gitmirror/app/webhook",
        )
    )
    assert set(out) == PUBLIC_KEYS
    assert out["id"] == "acme-app" and out["url"] == TARGET and out["update_status"] == "none"
    item = store().raw("acme-app")
    assert item is not None
    assert item["source_url"] == SOURCE and item["url"] == TARGET and item["provider"] == "github"
    assert item["source_key"] == "github#id#4242" and item["source_full_name"] == "acme/app"
    assert item["keep_divergent_refs"] is True and item["enabled"] is True
    assert item["branch_filters"] == ["main", "release/*"] and item["mirror_branch_regex"] == "v[0-9]+"
    assert item["target_secret"] == "gitmirror/app/target" and item["auth_method"] == "password"

    # a second mirror: generated id, disabled, human output
    proc = cli(
        "mirrors", "add", "--source-url", "https://gitlab.com/grp/lib.git", "--url", TARGET + "2",
        "--provider", "gitlab", "--source-full-name", "grp/lib", "--auth-method", "none", "--disabled",
        "--webhook-secret", "gitmirror/app/webhook",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("created mirror grp-lib-")
    assert "enabled:" in proc.stdout and "no" in proc.stdout
    other = next(m.id for m in store().list_mirrors() if m.id != "acme-app")

    # the same id again: exit 1, nothing changed
    proc = cli(*add_args("acme-app"))
    assert "already exists" in one_error_line(proc, 1)
    assert (store().raw("acme-app") or {})["keep_divergent_refs"] is True

    proc = cli("mirrors", "list")
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split()[:2] == ["ID", "SOURCE"] and "LAST SUCCESS" in header and "LAST ERROR" in header
    assert [r.split()[0] for r in rows] == sorted(["acme-app", other])
    acme = next(r for r in rows if r.startswith("acme-app"))
    assert f"{SOURCE} → {TARGET}" in acme and " none " in acme and "never" in acme
    assert "[disabled]" in next(r for r in rows if r.startswith(other))

    listed = ok_json("mirrors", "list")
    assert set(listed) == {"mirrors"}
    assert [m["id"] for m in listed["mirrors"]] == sorted(["acme-app", other])
    assert all(set(m) == PUBLIC_KEYS for m in listed["mirrors"])
    assert ok_json("status") == listed

    shown = ok_json("mirrors", "show", "acme-app")
    assert shown == out
    assert ok_json("status", "acme-app") == shown
    proc = cli("status", "acme-app")
    assert proc.returncode == 0
    details = dict(line.split(":", 1) for line in proc.stdout.splitlines())
    assert details["target url"].strip() == TARGET
    assert details["last successful update at"].strip() == "never"
    assert details["branch filters"].strip() == "main, release/*"
    assert details["source secret"].strip() == "gitmirror/app/source"

    assert ok_json("mirrors", "delete", "acme-app") == {"deleted": "acme-app"}
    assert store().get("acme-app") is None
    proc = cli("mirrors", "delete", "acme-app")
    assert one_error_line(proc, 1) == "gitmirror: error: no mirror with id acme-app"
    assert "no mirror with id acme-app" in one_error_line(cli("mirrors", "show", "acme-app"), 1)
    assert json_error(cli("status", "acme-app", "--json"), 1) == "no mirror with id acme-app"


def test_update_changes_settings_but_never_the_url(aws: AwsEnv) -> None:
    assert cli(*add_args("app")).returncode == 0
    out = ok_json(
        "mirrors", "update", "app", "--disable", "--keep-divergent-refs", "--branch-filter", "main",
        "--branch-filter", "dev", "--branch-regex", "rel-.*", "--source-secret", "gitmirror/app/s2",
    )  # fmt: skip
    assert out["enabled"] is False and out["keep_divergent_refs"] is True
    assert out["branch_filters"] == ["main", "dev"] and out["mirror_branch_regex"] == "rel-.*"
    assert out["source_secret"] == "gitmirror/app/s2" and out["url"] == TARGET
    assert out["target_secret"] == "gitmirror/app/target"  # untouched

    out = ok_json(
        "mirrors", "update", "app", "--enable", "--no-keep-divergent-refs",
        "--clear-branch-filters", "--clear-branch-regex",
    )  # fmt: skip
    assert out["enabled"] is True and out["keep_divergent_refs"] is False
    assert out["branch_filters"] == [] and out["mirror_branch_regex"] is None
    item = store().raw("app")
    assert item is not None and "branch_filters" not in item and "mirror_branch_regex" not in item
    before = store().raw("app")

    # immutability: there is no flag for the target url
    line = one_error_line(cli("mirrors", "update", "app", "--url", f"https://{CANARY}@evil.example/x.git"), 2)
    assert "urls cannot be changed" in line
    for args, needle in [
        (["app"], "nothing to change"),
        (["app", "--enable", "--disable"], "not allowed with"),
        (["app", "--branch-regex", "("], "--branch-regex"),
        (["app", "--target-secret", "other/prefix"], "prefix"),
    ]:
        assert needle in one_error_line(cli("mirrors", "update", *args), 2)
    assert store().raw("app") == before
    assert "no mirror with id nope" in one_error_line(cli("mirrors", "update", "nope", "--enable"), 1)


def test_sync_queues_one_job_then_is_a_no_op(aws: AwsEnv) -> None:
    assert cli(*add_args("app")).returncode == 0
    assert ok_json("mirrors", "sync", "app") == {"mirror": "app", "queued": True, "reason": "queued"}
    messages = aws.queue_messages()
    assert len(messages) == 1
    attributes: Any = messages[0]["Attributes"]
    assert attributes["MessageGroupId"] == "app"
    body = json.loads(str(messages[0]["Body"]))
    assert body["mirror_id"] == "app" and body["trigger"] == "manual"

    second = ok_json("mirrors", "sync", "app")
    assert second == {"mirror": "app", "queued": False, "reason": "a run is already scheduled"}
    proc = cli("mirrors", "sync", "app")
    assert proc.returncode == 0 and "not queued" in proc.stdout
    assert len(aws.queue_messages()) == 1
    proc = cli("status")
    assert "scheduled" in proc.stdout.splitlines()[1]

    assert "no mirror with id ghost" in one_error_line(cli("mirrors", "sync", "ghost"), 1)
    assert len(aws.queue_messages()) == 1


def test_runs_table_and_json(aws: AwsEnv) -> None:
    assert cli(*add_args("app")).returncode == 0
    now = utcnow()
    sha = "a" * 40
    ok_run = RunRecord(
        mirror_id="app",
        run_id=f"{iso(now - dt.timedelta(minutes=10))}-0001",
        trigger=Trigger.WEBHOOK,
        started_at=iso(now - dt.timedelta(minutes=10)),
        finished_at=iso(now - dt.timedelta(minutes=10) + dt.timedelta(seconds=3)),
        update_status=UpdateStatus.FINISHED,
        result=RunStatus.SUCCESS,
        refs=[
            RefUpdate(ref="refs/heads/main", action=Action.CREATE, new=sha),
            RefUpdate(ref="refs/tags/v1", action=Action.CREATE, new=sha),
            RefUpdate(ref="refs/heads/x", action=Action.SKIP_DIVERGENT, new=sha),
        ],
        duration_ms=3200,
    )
    failed_run = RunRecord(
        mirror_id="app",
        run_id=f"{iso(now)}-0002",
        trigger=Trigger.MANUAL,
        started_at=iso(now),
        finished_at=iso(now),
        update_status=UpdateStatus.FAILED,
        result=RunStatus.FAILED,
        error="authentication failed for the target " + "x" * 100 + "\nsecond line",
        duration_ms=800,
    )
    store().put_run(ok_run)
    store().put_run(failed_run)

    runs = ok_json("runs", "app")
    assert set(runs) == {"runs"}
    assert [r["run_id"] for r in runs["runs"]] == [failed_run.run_id, ok_run.run_id]  # newest first
    assert runs["runs"][1]["refs"][0] == {
        "ref": "refs/heads/main", "action": "create", "old": None, "new": sha, "error": None,
        "reason_code": None, "hint": None,
    }  # fmt: skip
    assert [r["run_id"] for r in ok_json("runs", "app", "--limit", "1")["runs"]] == [failed_run.run_id]

    proc = cli("runs", "app")
    assert proc.returncode == 0, proc.stderr
    header, first, second = proc.stdout.splitlines()
    assert header.split() == ["RUN", "ID", "TRIGGER", "STATUS", "DURATION", "REFS", "CHANGED", "ERROR"]
    assert first.split()[:4] == [failed_run.run_id, "manual", "failed", "0.8s"]
    assert "authentication failed for the target" in first and "second line" not in first
    assert len(first.split("authentication", 1)[1]) < 60
    assert second.split() == [ok_run.run_id, "webhook", "success", "3.2s", "2"]

    assert "no mirror with id ghost" in one_error_line(cli("runs", "ghost"), 1)
    assert "--limit" in one_error_line(cli("runs", "app", "--limit", "0"), 2)


def test_a_run_started_over_an_hour_ago_shows_as_stuck(aws: AwsEnv) -> None:
    assert cli(*add_args("stuck-app")).returncode == 0
    assert cli(*add_args("busy-app")).returncode == 0
    s = store()
    assert s.acquire_lease("stuck-app", "run-1", 900, now=utcnow() - dt.timedelta(hours=2))
    assert s.acquire_lease("busy-app", "run-2", 900)

    proc = cli("status")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "failed (stuck: started over an hour ago)" in rows["stuck-app"]
    assert " started " in rows["busy-app"] and "stuck" not in rows["busy-app"]

    mirrors = {m["id"]: m for m in ok_json("mirrors", "list")["mirrors"]}
    assert mirrors["stuck-app"]["stuck"] is True and mirrors["stuck-app"]["update_status"] == "failed"
    assert "stuck" not in mirrors["busy-app"] and mirrors["busy-app"]["update_status"] == "started"


@pytest.mark.parametrize(
    ("changes", "needle", "env"),
    [
        ({"--url": f"https://u:{CANARY}@git.example.com/r.git"}, "must not contain credentials", {}),
        ({"--source-url": "git@github.com:acme/app.git"}, "not ssh", {}),
        ({"--url": "http://git.example.com/r.git"}, "must use https://", {"ALLOW_INSECURE_HTTP": "false"}),
        ({"--id": "Bad_ID!"}, "argument --id: id must be", {}),
        (
            {"--url": "https://%31%36%39.254.169.254/latest"},
            "link-local",
            {"ALLOW_PRIVATE_NETWORKS": "false"},
        ),
        ({"--url": "https://localhost./r.git"}, "localhost", {"ALLOW_LOOPBACK": "false"}),
        ({"--source-url": "https://0x7f.1/r.git"}, "non-standard form of the address 127.0.0.1", {}),
        ({"--provider": "bitbucket"}, "invalid choice", {}),
        ({"--source-repo-id": "12ab"}, "--source-repo-id: String should match pattern", {}),
        ({"--branch-regex": "(["}, "--branch-regex: invalid branch regex", {}),
        ({"--branch-regex": "(?<=x)y"}, "--branch-regex: invalid branch regex (it must be RE2", {}),
        ({"--source-secret": "elsewhere/x"}, "must start with the deployment's prefix", {}),
        ({"--bogus": "x"}, "unrecognized arguments", {}),
    ],
)
def test_add_usage_errors_exit_2_and_write_nothing(
    aws: AwsEnv, changes: dict[str, str], needle: str, env: dict[str, str]
) -> None:
    args = add_args("app")
    for flag, value in changes.items():
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    line = one_error_line(cli(*args, env=dict(os.environ, **env)), 2)
    assert needle in line
    assert all_items(mirrors_table()) == []


def test_other_usage_errors_and_unreachable_aws(aws: AwsEnv) -> None:
    assert "argument ID" in one_error_line(cli("mirrors", "show", "../etc"), 2)
    assert "argument ID" in one_error_line(cli("runs", "Not An Id"), 2)
    assert "ACTION" in one_error_line(cli("mirrors"), 2)
    add_missing = cli("mirrors", "add", "--source-url", SOURCE, "--url", TARGET, "--provider", "github")
    assert "give --source-repo-id or --source-full-name" in one_error_line(add_missing, 2)
    assert all_items(mirrors_table()) == []

    dead = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
    line = one_error_line(cli("status", env=dead), 1)
    assert "cannot reach AWS" in line
    assert "not found" in json_error(cli("mirrors", "list", "--mirrors-table", "no-such-table", "--json"), 1)


def test_max_push_bytes_on_add_and_update(aws: AwsEnv) -> None:
    out = ok_json(*add_args("app", "--max-push-bytes", "15M"))
    assert out["max_push_bytes"] == 15 * 1024**2
    assert ok_json("mirrors", "update", "app", "--max-push-bytes", "2G")["max_push_bytes"] == 2 * 1024**3
    before = store().raw("app")
    for value in ("12Q", "0", "-1"):
        assert "--max-push-bytes" in one_error_line(
            cli("mirrors", "update", "app", "--max-push-bytes", value), 2
        )
    assert "--max-push-bytes" in one_error_line(cli(*add_args("app-2", "--max-push-bytes", "12Q")), 2)
    assert store().raw("app") == before and store().raw("app-2") is None
    assert ok_json("mirrors", "update", "app", "--clear-max-push-bytes")["max_push_bytes"] is None
    shown = cli("mirrors", "show", "app")
    assert shown.returncode == 0 and "max push bytes:" in shown.stdout


def test_add_checks_that_the_named_secrets_exist(aws: AwsEnv) -> None:
    """Refused (exit 2, nothing written) when a secret is missing; with --no-verify-secrets a warning."""
    proc = cli(*add_args("app", "--webhook-secret", "gitmirror/app/not-yet"))
    assert "there is no secret 'gitmirror/app/not-yet' in Secrets Manager" in one_error_line(proc, 2)
    assert all_items(mirrors_table()) == []
    proc = cli(*add_args("app", "--webhook-secret", "gitmirror/app/not-yet", "--no-verify-secrets", "--json"))
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "there is no secret 'gitmirror/app/not-yet'" in proc.stderr
    assert json.loads(proc.stdout)["webhook_secret"] == "gitmirror/app/not-yet"
