"""Each delivery worker's heartbeat: a row touched every 15 s by the worker's job
`core.worker_heartbeat`, read by /metrics (`clientdesk_worker_last_seen_seconds`) and by the
banner administrators see when deliveries wait with no worker seen (delivery/context_processors.py).

The same job serves the worker's own /metrics on `CLIENTDESK_WORKER_METRICS_PORT` from its first
run: jobs run in workers only, and a worker has no web server of its own."""

import math
import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from prometheus_client import Metric
from prometheus_client.core import GaugeMetricFamily

from clientdesk.core.metrics import metrics_serve
from clientdesk.core.models import WorkerHeartbeat

HEARTBEAT_SECONDS = 15.0
# No heartbeat for this long while deliveries wait: administrators see a banner.
WORKER_ABSENT_AFTER = timedelta(minutes=2)
FORGET_AFTER = timedelta(days=1)

_started: dict[int, datetime] = {}  # by pid: the job's first run in this process


def worker_heartbeat_job(now: datetime) -> None:
    pid = os.getpid()
    if pid not in _started:
        _started[pid] = now
        if settings.CLIENTDESK_WORKER_METRICS_PORT is not None:
            metrics_serve(
                host=settings.CLIENTDESK_WORKER_METRICS_HOST,
                port=settings.CLIENTDESK_WORKER_METRICS_PORT,
            )
    host = socket.gethostname()
    WorkerHeartbeat.objects.update_or_create(
        name=f"{host}:{pid}:{_started[pid].timestamp():.0f}",
        defaults={"seen_at": now},
        create_defaults={"host": host, "pid": pid, "started_at": _started[pid], "seen_at": now},
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()


def worker_last_seen() -> datetime | None:
    """When any worker last showed it runs; None if none ever did (one indexed read)."""
    return WorkerHeartbeat.objects.aggregate(last=Max("seen_at"))["last"]


def worker_absent(now: datetime) -> bool:
    last = worker_last_seen()
    return last is None or now - last > WORKER_ABSENT_AFTER


def worker_metrics(now: datetime) -> Iterable[Metric]:
    last = worker_last_seen()
    yield GaugeMetricFamily(
        "clientdesk_worker_last_seen_seconds",
        "Seconds since any delivery worker's last heartbeat (+Inf: none ever ran).",
        value=math.inf if last is None else max(0.0, (now - last).total_seconds()),
    )
