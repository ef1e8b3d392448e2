"""The live-event log that event streams read: one row per change a stream cares about."""

from django.db import models


class LiveEvent(models.Model):
    """Written in the transaction of the change it describes. `id` is the stream cursor: rows
    become visible in `id` order (see `live.live_event_record`), so "after id N" never skips."""

    id = models.BigAutoField(primary_key=True)
    client_id = models.UUIDField(help_text="The client the event is about.")
    type = models.CharField(max_length=64)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["client_id", "id"], name="live_event_client_idx")]

    def __str__(self) -> str:
        return f"{self.type} #{self.id}"


class WorkerHeartbeat(models.Model):
    """One row per delivery worker process, touched every 15 s while it runs (core/heartbeat.py);
    rows of workers gone for a day are removed."""

    name = models.CharField(max_length=200, unique=True, help_text="host:pid:start of the process")
    host = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.name} seen {self.seen_at:%Y-%m-%d %H:%M:%S}"
