"""AWS adapters: DynamoDB (mirrors, runs), SQS (jobs), Secrets Manager (secrets), idempotency."""
