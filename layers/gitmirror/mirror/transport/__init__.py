"""Moving bytes: ref listings, fetches and pushes through dulwich's clients.

`remote` holds the operations (list, fetch, push) on one side of a mirror; `http_client` is dulwich's
HTTP client subclassed for a mirror service; `fetched_pack` the life of a downloaded pack; `classify`
turns dulwich/urllib3 failures into `gitmirror.errors`; `stats` counts the bytes; `deadline` bounds
every network read of a run in wall-clock time.
"""

from typing import TYPE_CHECKING, Any

from gitmirror.mirror.transport.classify import classify_error
from gitmirror.mirror.transport.deadline import Deadline
from gitmirror.mirror.transport.remote import PushOutcome, RefListing, Remote
from gitmirror.mirror.transport.stats import TransferStats

if TYPE_CHECKING:
    from gitmirror.mirror.transport.fetched_pack import FetchedPack


def __getattr__(name: str) -> Any:
    # a listing needs no pack: `fetched_pack` loads with the first fetch
    if name == "FetchedPack":
        from gitmirror.mirror.transport.fetched_pack import FetchedPack

        return FetchedPack
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Deadline",
    "FetchedPack",
    "PushOutcome",
    "RefListing",
    "Remote",
    "TransferStats",
    "classify_error",
]
