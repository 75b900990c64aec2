"""DeliveryLedger on DynamoDB, through Powertools' idempotency utility."""

from __future__ import annotations

from typing import Any

from gitmirror.ports import Action

from . import clients

# How long a delivery id is remembered: GitHub and GitLab let people redeliver old deliveries by hand.
DELIVERY_MEMORY_SECONDS = 3 * 24 * 3600


class DynamoDeliveryLedger:
    """Runs an action once per delivery key (provider + delivery id) for DELIVERY_MEMORY_SECONDS."""

    def __init__(self, table_name: str) -> None:
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        self._config = IdempotencyConfig(
            event_key_jmespath="[provider, delivery_id]", expires_after_seconds=DELIVERY_MEMORY_SECONDS
        )
        persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=clients.client("dynamodb"))

        @idempotent_function(data_keyword_argument="key", config=self._config, persistence_store=persistence)
        def _once(key: dict[str, Any], action: Action) -> dict[str, Any]:
            return action()

        self._once = _once

    def once(self, key: dict[str, Any], action: Action) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        try:
            result: dict[str, Any] = self._once(key=key, action=action)
        except IdempotencyAlreadyInProgressError:
            return {"mirrors": [], "in_progress": True}
        return result

    def register_context(self, context: Any) -> None:
        self._config.register_lambda_context(context)
