"""Developer tooling: local stack, git test server, demo, events generator, load test (not in the layer)."""
