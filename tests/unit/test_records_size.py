"""Big runs fit DynamoDB items: capped lists with exact counts, every per-ref result in pages."""

from __future__ import annotations

import secrets

from gitmirror.run.records_size import (
    DIVERGENT_CAP,
    INLINE_REFS_CAP,
    divergent_fields,
    read_page,
    ref_pages,
    run_fields,
)
from gitmirror.values import Action, RefUpdate, RunStatus, SyncResult

ITEM_LIMIT = 400 * 1024


def _refs(n: int) -> list[RefUpdate]:
    """Incompressible content: random ids, long names, long errors."""
    return [
        RefUpdate(
            ref=f"refs/heads/{secrets.token_hex(100)}",
            action=Action.REJECTED,
            old=secrets.token_hex(20),
            new=secrets.token_hex(20),
            error=secrets.token_hex(200),
        )
        for _ in range(n)
    ]


def test_every_page_fits_an_item_even_when_nothing_compresses_and_reads_back_in_order() -> None:
    refs = _refs(3000)
    pages = ref_pages(refs)
    assert len(pages) > 1 and all(len(p) < ITEM_LIMIT - 1024 for p in pages)
    assert [r for p in pages for r in read_page(p)] == refs


def test_small_runs_need_no_pages_and_lists_are_capped_with_exact_counts() -> None:
    assert ref_pages(_refs(INLINE_REFS_CAP)) == []
    divergent = [f"refs/heads/d{i:04d}" for i in range(250)]
    assert divergent_fields(divergent) == {
        "divergent_refs": divergent[:DIVERGENT_CAP],
        "divergent_refs_truncated": 250 - DIVERGENT_CAP,
    }
    assert divergent_fields([]) == {"divergent_refs": None, "divergent_refs_truncated": None}
    refs = [RefUpdate(ref=f"refs/heads/c{i}", action=Action.CREATE, new="a" * 40) for i in range(150)]
    fields = run_fields(SyncResult(status=RunStatus.SUCCESS, refs=refs, divergent_refs=divergent))
    assert fields["refs"] == refs[:INLINE_REFS_CAP] and fields["refs_truncated"] == 50
    assert fields["refs_created"] == 150 and fields["divergent_refs_truncated"] == 150
