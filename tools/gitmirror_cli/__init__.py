"""The operator's command line, `gitmirror` (not part of the Lambda layer)."""
