"""Writes of delivery, one module per job: the queue, the outgoing endpoint, the checkpoint
webhook."""
