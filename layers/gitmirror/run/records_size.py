"""Status and run items of any ref count stay under DynamoDB's 400 KB item limit.

Counts are always exact. Lists are capped: `divergent_refs` at 100 (GitLab's cap), the run item's
`refs` at 100, each with a `..._truncated` count of what was left out. A run with more per-ref results
than that stores all of them in extra items of the runs table ("pages": zlib-compressed JSON in a
binary attribute, under the partition `<mirror id>#refs`, sort key `<run id>#<page>`, same TTL),
which `MirrorStore.run_refs` reads back;
the mirror's own partition holds only run items, so listing runs is unchanged.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any

from gitmirror.values import Action, RefUpdate, SyncResult

DIVERGENT_CAP = 100  # GitLab caps its divergent-refs list at 100
INLINE_REFS_CAP = 100
# A page's JSON size before compression (15,000 refs take about 3 pages, ~100 KB each once compressed)
PAGE_BYTES = 300 * 1024
PAGES_PARTITION_SUFFIX = "#refs"


def capped[T](items: Sequence[T], cap: int) -> tuple[list[T], int]:
    """The first `cap` items and how many were left out."""
    return list(items[:cap]), max(0, len(items) - cap)


def divergent_fields(divergent: Sequence[str]) -> dict[str, Any]:
    """The status item's and the run item's divergent list, capped (None values are removed)."""
    shown, truncated = capped(divergent, DIVERGENT_CAP)
    return {"divergent_refs": shown or None, "divergent_refs_truncated": truncated or None}


def ref_counts(result: SyncResult) -> dict[str, int]:
    return {
        "refs_created": result.count(Action.CREATE),
        "refs_updated": result.count(Action.UPDATE) + result.count(Action.FORCE_UPDATE),
        "refs_deleted": result.count(Action.DELETE),
        "refs_rejected": result.count(Action.REJECTED),
        "refs_skipped": result.count(Action.SKIP_DIVERGENT),
    }


def ref_pages(refs: Sequence[RefUpdate]) -> list[bytes]:
    """All per-ref results as zlib-compressed JSON lists of at most PAGE_BYTES before compression (so
    under the item limit even if nothing compresses); none when they fit in the run item."""
    if len(refs) <= INLINE_REFS_CAP:
        return []
    pages: list[list[dict[str, Any]]] = [[]]
    size = 0
    for ref in refs:
        entry = {k: v for k, v in ref.to_dict().items() if v is not None}
        entry_size = len(json.dumps(entry)) + 2
        if pages[-1] and size + entry_size > PAGE_BYTES:
            pages.append([])
            size = 0
        pages[-1].append(entry)
        size += entry_size
    return [zlib.compress(json.dumps(page).encode()) for page in pages]


def read_page(data: bytes) -> list[RefUpdate]:
    return [
        RefUpdate(**{**entry, "action": Action(entry["action"])})
        for entry in json.loads(zlib.decompress(data))
    ]


def run_fields(result: SyncResult) -> dict[str, Any]:
    """The run item's lists (capped) and exact counts."""
    refs, refs_truncated = capped(result.refs, INLINE_REFS_CAP)
    divergent, divergent_truncated = capped(result.divergent_refs, DIVERGENT_CAP)
    return {
        "divergent_refs": divergent,
        "divergent_refs_truncated": divergent_truncated,
        "refs": refs,
        "refs_truncated": refs_truncated,
        **ref_counts(result),
    }


def pages_partition(mirror_id: str) -> str:
    return mirror_id + PAGES_PARTITION_SUFFIX


def page_key(run_id: str, page: int) -> str:
    return f"{run_id}#{page:05d}"
