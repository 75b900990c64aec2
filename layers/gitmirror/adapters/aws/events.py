"""StateEvents on EventBridge: mirror state changes on the default bus (source `gitmirror`)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gitmirror.errors import TransientError
from gitmirror.run.transitions import SOURCE, Transition
from gitmirror.scrub import scrub

from . import clients

DEFAULT_BUS = "default"


class EventBridgeEvents:
    """StateEvents on one EventBridge bus (the account's default bus unless told otherwise)."""

    def __init__(self, bus: str = DEFAULT_BUS, client: Any = None) -> None:
        self.bus = bus
        self._client = client

    def put(self, event: Transition) -> str:
        """Put one event; returns its id. Raises TransientError when EventBridge did not take it."""
        entry = {
            "Source": SOURCE,
            "DetailType": event.detail_type,
            "Detail": scrub(json.dumps(event.detail)),
            "EventBusName": self.bus,
        }
        try:
            out = (self._client or clients.client("events")).put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            raise TransientError(
                f"could not put the {event.detail_type!r} event: {type(exc).__name__}"
            ) from None
        [answer] = out.get("Entries") or [{}]
        if out.get("FailedEntryCount") or "EventId" not in answer:
            code = answer.get("ErrorCode", "unknown")
            raise TransientError(f"EventBridge refused the {event.detail_type!r} event: {code}")
        return str(answer["EventId"])
