"""One canary token for every credential, every path run, then a sweep of everything observable:
log lines, DynamoDB items, SQS messages, HTTP responses, exception texts and CLI output."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from gitmirror.errors import MirrorError
from gitmirror.mirror.credentials import StaticCredentials
from gitmirror.mirror.engine import sync_mirror
from gitmirror.mirror.transport import Remote
from gitmirror.mirror.urls import parse_remote
from gitmirror_dev.lambdas import http_event, invoke_http, load_function
from tests.conftest import SOURCE_USER, TARGET_USER, AwsEnv, GitServers
from tests.support import gitrepo as g
from tests.support.service import Functions, add_mirror, all_items, github_push

CANARY = "canary-ALL-9d1c7e0b5a"
GITMIRROR = str(Path(sys.executable).with_name("gitmirror"))


def test_canary_never_escapes(
    aws: AwsEnv,
    git_servers: GitServers,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # every level: botocore at DEBUG logs whole response bodies (GetSecretValue's included)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="gitmirror")
    fns = Functions()  # the handlers load first, as in Lambda: they cap the library loggers
    # every credential is the canary
    git_servers.source.password = CANARY
    git_servers.target.password = CANARY
    g.commit(git_servers.source_path, "refs/heads/main", {"a": "1"})
    observed: list[str] = []
    creds = {"username": SOURCE_USER, "token": CANARY}
    target_creds = {"username": TARGET_USER, "token": CANARY}

    # worker: success, wrong token, 401/500 from a server, unreachable host
    ok = add_mirror(
        aws,
        git_servers.source_url,
        git_servers.target_url,
        source_secret_value=creds,
        target_secret_value=target_creds,
    )
    bad = add_mirror(
        aws,
        git_servers.source_url,
        git_servers.target.repo_url("absent.git"),
        source_secret_value=creds,
        target_secret_value={"username": TARGET_USER, "token": CANARY + "-wrong"},
    )
    gone = add_mirror(
        aws,
        "http://127.0.0.1:9/x.git",
        git_servers.target_url,
        source_secret_value=creds,
        target_secret_value=target_creds,
    )
    status, reply = fns.post("github", *github_push())
    observed.append(json.dumps(reply))
    assert status == 202 and sorted(reply["mirrors"]) == sorted([ok.id, bad.id, gone.id])
    git_servers.source.fail_next(500, count=2, path_contains="git-upload-pack")
    fns.poller(aws).drain(max_idle_polls=2)

    # engine errors, including credentials embedded in URLs and servers answering errors
    for url in (
        f"http://{SOURCE_USER}:{CANARY}@127.0.0.1:{git_servers.source.port}/absent.git",
        f"http://{SOURCE_USER}:{CANARY}@127.0.0.1:9/unreachable.git",
    ):
        remote = parse_remote(url)
        result = sync_mirror(
            Remote(remote, StaticCredentials(remote.username or "", remote.password or "")),
            Remote(parse_remote(git_servers.target_url), StaticCredentials(TARGET_USER, CANARY)),
        )
        observed.append(result.to_json())
        assert result.error
    observed.append(str(MirrorError(f"failed at https://user:{CANARY}@example.com/r.git with {CANARY}")))

    # API: a URL carrying the canary is refused without echoing it
    api = load_function("api")
    body = json.dumps(
        {
            "source_url": f"https://u:{CANARY}@github.com/o/r.git",
            "url": "https://github.com/o/mirror.git",
            "provider": "github",
            "source_repo_id": "1",
            "target_secret": "gitmirror/x",
        }
    ).encode()
    status, _h, raw = invoke_http(
        api, http_event("POST", "/mirrors", {"content-type": "application/json"}, body)
    )
    assert status == 400
    observed.append(raw.decode())
    for path in ("/mirrors", f"/mirrors/{ok.id}", f"/mirrors/{ok.id}/runs"):
        observed.append(invoke_http(api, http_event("GET", path, {}, b""))[2].decode())

    # CLI: sync with the canary in env and in the URL, success and failure; status and runs
    env = dict(aws.env, PATH="/usr/bin:/bin", TMPDIR=str(tmp_path))
    env.update(
        GITMIRROR_SOURCE_USERNAME=SOURCE_USER,
        GITMIRROR_SOURCE_TOKEN=CANARY,
        GITMIRROR_TARGET_USERNAME=TARGET_USER,
    )
    for args in (
        ["sync", git_servers.source_url, git_servers.target_url, "--json"],
        [
            "sync",
            git_servers.source_url,
            f"http://{TARGET_USER}:{CANARY}@127.0.0.1:{git_servers.target.port}/dst.git",
        ],
        [
            "sync",
            git_servers.source_url,
            f"http://{TARGET_USER}:{CANARY}x@127.0.0.1:{git_servers.target.port}/dst.git",
            "--json",
        ],
        ["status"],
        ["status", ok.id, "--json"],
        ["runs", bad.id],
        [
            "mirrors",
            "add",
            "--provider",
            "github",
            "--source-repo-id",
            "7",
            "--source-url",
            f"https://u:{CANARY}@github.com/o/r.git",
            "--url",
            "https://github.com/o/m.git",
            "--target-secret",
            "gitmirror/t",
        ],
    ):
        proc = subprocess.run([GITMIRROR, *args], env=env, capture_output=True, text=True, timeout=120)
        observed.append(proc.stdout + proc.stderr)

    # sweep
    tables = [aws.env["MIRRORS_TABLE"], aws.env["RUNS_TABLE"], aws.env["IDEMPOTENCY_TABLE"]]
    items = json.dumps([all_items(t) for t in tables], default=str)
    sqs = boto3.client("sqs")
    messages = [
        m["Body"]
        for url in (aws.queue_url, aws.dlq_url)
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
    ]
    out = capsys.readouterr()
    everything = "\n".join([items, *messages, *observed, out.out, out.err, caplog.text])
    assert CANARY in "".join(creds.values())  # the canary really was the credential
    assert CANARY not in everything
    assert "run_id" in items and ok.id in items  # the sweep looked at real data
    assert "DEBUG" in {r.levelname for r in caplog.records}  # debug records were captured and swept
    assert g.refs(git_servers.target_path) == g.refs(git_servers.source_path)
