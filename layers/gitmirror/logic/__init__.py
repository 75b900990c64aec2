"""Business logic: plain functions over models and the state/jobs/secrets modules."""
