"""`gitmirror sync --json` written a slice of the refs at a time is the same text as the document
dumped whole (a run may report 400,000 refs), secrets scrubbed in every slice."""

from __future__ import annotations

import io
import json

import pytest

from gitmirror.scrub import register_secret
from gitmirror.values import Action, RefUpdate, RunStatus, SyncResult
from gitmirror_cli.main import JSON_REFS_PER_WRITE, sync_json, write_sync_json

CANARY = "canary-token-5f2d1c9e"


@pytest.mark.parametrize(
    "count", [0, 1, JSON_REFS_PER_WRITE, JSON_REFS_PER_WRITE + 1, 2 * JSON_REFS_PER_WRITE + 7]
)
def test_streamed_json_is_the_whole_document(count: int) -> None:
    register_secret(CANARY)
    refs = [
        RefUpdate(
            ref=f"refs/heads/b{i}",
            action=Action.REJECTED if i % 7 == 0 else Action.CREATE,
            new="a" * 40,
            error=f"refused with {CANARY}" if i % 7 == 0 else None,
        )
        for i in range(count)
    ]
    for result in (
        SyncResult(status=RunStatus.PARTIAL, refs=refs, divergent_refs=["refs/heads/x"]),
        SyncResult(
            status=RunStatus.FAILED, refs=refs, error=f"boom {CANARY}", reason_code="unknown", hint="h"
        ),
        SyncResult(status=RunStatus.SUCCESS, refs=refs, dry_run=True),
    ):
        out = io.StringIO()
        write_sync_json(result, out)
        text = out.getvalue()
        assert text == json.dumps(sync_json(result)) + "\n"
        assert CANARY not in text
        assert len(json.loads(text)["refs"]) == count
