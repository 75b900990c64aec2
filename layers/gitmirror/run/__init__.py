"""The worker's use case: a queued job becomes a mirror run with a status and a run record."""
