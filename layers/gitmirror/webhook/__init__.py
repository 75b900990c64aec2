"""Webhooks: verify the signature, parse the push payload, and receive (match, dedupe, enqueue)."""
