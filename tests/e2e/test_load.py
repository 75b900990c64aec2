"""Load and concurrency through `gitmirror serve` and a local worker pool on moto (see `make load`)."""

from __future__ import annotations

from gitmirror_dev.loadtest import run_load
from gitmirror_dev.stack import local_stack


def test_concurrent_webhooks_never_overlap_lose_or_duplicate() -> None:
    with local_stack(sample="generated") as stack:
        report = run_load(stack, mirrors=4, burst=20, per_mirror=3, workers=3)
    assert report.errors == []
    assert report.accepted == report.webhooks_sent  # every signed push accepted
    assert report.duplicates == 10  # every redelivery dropped
    assert report.overlapping_runs == 0  # lease + FIFO group: one run per mirror at a time
    assert report.converged == report.mirrors  # no job lost: every target equals its source
    assert 0 < report.runs <= report.accepted  # bursts coalesce
