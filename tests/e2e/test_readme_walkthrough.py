"""The README walkthrough: every block the README marks `<!-- walkthrough: NAME -->`, run in order in a
shell against `gitmirror local up` with the exports it prints (the placeholders the README documents),
does what the README says around it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.support import gitrepo as g
from tests.support.local_up import READY, LocalUp

MARKER = re.compile(r"^\s*<!-- walkthrough: (?P<name>[a-z0-9-]+) -->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\w*)\s*$")


def walkthrough_blocks(readme: str) -> list[tuple[str, str]]:
    """(name, shell text) of each marked block, in README order."""
    lines = readme.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        match = MARKER.match(line)
        if not match:
            continue
        start = index + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        fence = FENCE.match(lines[start]) if start < len(lines) else None
        assert fence and fence["lang"] == "sh", f"walkthrough {match['name']}: no ```sh block follows"
        end = start + 1
        while not re.match(rf"^{fence['indent']}```\s*$", lines[end]):
            end += 1
        blocks.append((match["name"], textwrap.dedent("\n".join(lines[start + 1 : end]))))
    return blocks


def json_documents(text: str) -> list[Any]:
    decoder, docs, pos = json.JSONDecoder(), [], 0
    while pos < len(text.rstrip()):
        while text[pos].isspace():
            pos += 1
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)
    return docs


class Walk:
    def __init__(self, stack: LocalUp, shell_dir: Path) -> None:
        self.stack = stack
        self.dir = shell_dir
        self.env = stack.exports()
        self.upstream = Path(self.env["GITMIRROR_UPSTREAM"])
        self.downstream = Path(self.env["GITMIRROR_DOWNSTREAM"])
        self.mark = 0

    def mirrored_refs(self, repo: Path) -> dict[str, str]:
        return {k: v for k, v in g.refs(repo).items() if k.startswith(("refs/heads/", "refs/tags/"))}

    # one check per block: what the README says it does

    def push_upstream(self, out: str) -> None:
        assert g.rev_parse(self.upstream, "refs/heads/main") == g.git(self.dir / "work", "rev-parse", "HEAD")
        self.mark = len(self.stack.lines)

    def send_webhook(self, out: str) -> None:
        reply = json.loads(out)
        assert reply["mirrors"] == ["demo"] and reply["queued"] == 1, reply
        # "within a second or two local up's terminal shows ... job handled": wait for it, as a user would
        self.stack.wait_for('"message":"webhook handled"', start=self.mark)
        self.stack.wait_for('"message":"run started"', start=self.mark)
        handled = json.loads(
            self.stack.lines[self.stack.wait_for('"message":"job handled"', start=self.mark)]
        )
        assert handled["mirror_id"] == "demo" and handled["delivery_id"].startswith("readme-")
        assert handled["status"] == "finished" and handled["result"] == "success"
        for key in ("run_id", "duration_ms", "transfer", "bytes_received", "bytes_sent", "refs_created"):
            assert key in handled

    def mirrored(self, out: str) -> None:
        details = dict(
            line.split(":", 1) for line in out.splitlines() if ": " in line and "  " not in line[:2]
        )
        assert details["status"].strip() == "finished", out
        assert re.search(r"Z \((just now|\d+ (s|min) ago)\)$", details["last successful update at"])
        runs = [line for line in out.splitlines() if " webhook " in line]
        assert runs and "success" in runs[0], out
        main = g.rev_parse(self.upstream, "refs/heads/main")
        assert f"{main}\trefs/heads/main" in out
        assert self.mirrored_refs(self.downstream) == self.mirrored_refs(self.upstream)

    def sync_once(self, out: str) -> None:
        assert out.splitlines()[0].endswith(": success") and "create" in out
        assert self.mirrored_refs(self.dir / "copy.git") == self.mirrored_refs(self.upstream)

    def secrets(self, out: str) -> None:
        names = [doc["Name"] for doc in json_documents(out)]
        assert names == ["gitmirror/acme-app/source", "gitmirror/acme-app/webhook"]

    def add_mirror(self, out: str) -> None:
        assert out.startswith("created mirror acme-app\n"), out
        assert "https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/app" in out

    def status(self, out: str) -> None:
        table, rest = out.split("\n{", 1)
        rows = {line.split()[0]: line for line in table.splitlines()[1:]}
        assert {"acme-app", "demo", "demo-gitlab", "demo-gitea"} <= set(rows)
        assert " none " in rows["acme-app"] and "never" in rows["acme-app"]
        assert re.search(r" finished +(just now|\d+ (s|min) ago)", rows["demo"]), rows["demo"]
        shown, end = json.JSONDecoder().raw_decode("{" + rest)
        assert shown["id"] == "acme-app" and shown["update_status"] == "none"
        runs, listing = ("{" + rest)[end:].strip().split("\n", 1)
        assert runs == "no runs"
        assert [line.split()[0] for line in listing.splitlines()[1:]] == ["acme-app"]

    def aws_cli(self, out: str) -> None:
        item, runs = json_documents(out)
        assert item["Item"]["update_status"] == {"S": "none"}
        assert runs["Items"] == [] and runs["Count"] == 0


def test_readme_walkthrough_runs_verbatim_against_local_up(tmp_path: Path) -> None:
    # `make test` installs the AWS CLI in .venv-aws (scripts/aws_cli_venv.sh); else one on PATH
    aws_bin = REPO_ROOT / ".venv-aws" / "bin"
    if not (aws_bin / "aws").exists() and shutil.which("aws") is None:
        pytest.skip("the README's walkthrough uses the AWS CLI (`aws`): run `make test`, which installs it")
    blocks = walkthrough_blocks((REPO_ROOT / "README.md").read_text())
    shell_dir = tmp_path / "shell"
    shell_dir.mkdir()
    stack = LocalUp(tmp_path)
    try:
        stack.wait_for(READY)
        walk = Walk(stack, shell_dir)
        checks: dict[str, Callable[[str], None]] = {
            "push-upstream": walk.push_upstream,
            "send-webhook": walk.send_webhook,
            "mirrored": walk.mirrored,
            "sync-once": walk.sync_once,
            "secrets": walk.secrets,
            "add-mirror": walk.add_mirror,
            "status": walk.status,
            "aws-cli": walk.aws_cli,
        }
        assert [name for name, _ in blocks] == list(checks)  # a block without a check is a failure
        env = dict(
            os.environ,
            **walk.env,
            HOME=str(tmp_path),  # no ~/.aws or ~/.gitconfig of this machine
            PATH=os.pathsep.join(
                [str(Path(sys.executable).parent), str(aws_bin), os.environ.get("PATH", "")]
            ),
        )
        env.pop("POWERTOOLS_LOG_LEVEL", None)
        for name, text in blocks:
            proc = subprocess.run(
                ["bash", "-eo", "pipefail", "-c", text],
                cwd=shell_dir,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert proc.returncode == 0, f"{name}:\n{text}\n{proc.stdout}\n{proc.stderr}"
            checks[name](proc.stdout)
    finally:
        code = stack.stop()
    assert code == 0, stack.output[-3000:]
