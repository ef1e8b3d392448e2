"""Writes of messaging, one module per job: sending, idempotency, templates."""
