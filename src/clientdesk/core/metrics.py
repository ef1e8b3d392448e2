"""The metrics every process exposes in the Prometheus text format (`GET /metrics`).

Counters, histograms and the open-stream gauge are kept by `prometheus_client`: in memory for a
process that serves its own /metrics, in `PROMETHEUS_MULTIPROC_DIR` (core/multiproc.py) for the
worker processes of one server, whose values every worker's /metrics sums. Values that live in
the database (queue depth, the last worker seen, the last checkpoint...) are read when scraped,
one cheap query each, by the sources the apps register from `AppConfig.ready()`
(`metrics_source_register`), since core imports none of them.

Labels take only bounded values: a route is the URL pattern (never the path), a method outside
the standard ones is `other`, channels and outcomes are choices.
"""

import glob
import hmac
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from clientdesk.core.bearer import bearer_token
from clientdesk.core.gate import public

log = logging.getLogger(__name__)

prometheus_client.disable_created_metrics()

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "clientdesk_http_requests",
    "HTTP requests answered, by URL pattern, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "clientdesk_http_request_duration_seconds",
    "Time to answer an HTTP request (a stream: until its headers), by URL pattern and method.",
    ["route", "method"],
)
MESSAGES_SENT = Counter(
    "clientdesk_messages_sent",
    "Messages written, by where they came from: panel, api, portal (a client's reply), "
    "broadcast, other.",
    ["via"],
)
DELIVERIES = Counter(
    "clientdesk_deliveries",
    "Delivery attempts recorded, by channel and outcome: delivered, retrying, failed.",
    ["channel", "outcome"],
)
EVENT_STREAMS_OPEN = Gauge(
    "clientdesk_event_streams_open",
    "Event streams open now, by kind: staff, portal.",
    ["kind"],
    multiprocess_mode="livesum",
)

# --- Values read from the database when scraped -------------------------------------------------


MetricsSource = Callable[[datetime], Iterable[prometheus_client.Metric]]
_SOURCES: dict[str, MetricsSource] = {}


def metrics_source_register(*, name: str, collect: MetricsSource) -> None:
    """Add gauges read at scrape time. `collect(now)` makes one cheap, indexed query and returns
    metric families (`prometheus_client.core.GaugeMetricFamily`). Registering a name again
    replaces it (`ready()` may run twice in tests)."""
    _SOURCES[name] = collect


class _DatabaseCollector(Collector):
    def collect(self) -> Iterable[prometheus_client.Metric]:
        now = timezone.now()
        for name, collect in list(_SOURCES.items()):
            try:
                families = list(collect(now))
            except Exception:
                # The database may be away: the process's own metrics are still worth a scrape.
                log.warning("metrics source %s failed", name, exc_info=True)
                continue
            yield from families


_DATABASE = CollectorRegistry(auto_describe=False)
_DATABASE.register(_DatabaseCollector())

# --- Observations ---------------------------------------------------------------------------


def request_observe(*, route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    HTTP_DURATION.labels(route=route, method=method).observe(seconds)


class SentMessage(Protocol):
    @property
    def direction(self) -> str: ...

    @property
    def broadcast_id(self) -> object: ...


def messages_sent_observe(messages: Sequence[SentMessage], *, surface: str) -> None:
    """Count messages just committed. `surface`: `api` or `panel` for a request's, `other` for
    any written outside a request (core/access.py: `request_surface`)."""
    for message in messages:
        if message.broadcast_id is not None:
            via = "broadcast"
        elif message.direction == "in":
            via = "portal"
        else:
            via = surface
        MESSAGES_SENT.labels(via=via).inc()


def deliveries_observe(outcomes: Iterable[tuple[str, str]]) -> None:
    """Count recorded attempts, each a (channel, outcome)."""
    for channel, outcome in outcomes:
        DELIVERIES.labels(channel=channel, outcome=outcome).inc()


# --- Exposition -----------------------------------------------------------------------------

_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db$")


def _forget_dead_processes(path: str) -> None:
    """A server's worker that died left its live gauges (open streams) behind; its counters
    stay, since they only ever grew. Its pid is on this host: the directory is per start."""
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _LIVE_GAUGE_FILE.search(name)
        if not match:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, path)
        except PermissionError:
            pass


def metrics_text() -> bytes:
    """Everything this process reports, in the Prometheus text format."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        _forget_dead_processes(path)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path)
        own = prometheus_client.generate_latest(registry)
    else:
        own = prometheus_client.generate_latest(prometheus_client.REGISTRY)
    return own + prometheus_client.generate_latest(_DATABASE)


def metrics_authorized(header: str) -> bool:
    """`CLIENTDESK_METRICS_TOKEN` unset: anyone; set: `Authorization: Bearer <that token>`,
    compared in constant time."""
    expected = settings.CLIENTDESK_METRICS_TOKEN
    if not expected:
        return True
    given = bearer_token(header) or ""
    return hmac.compare_digest(given.encode(), expected.encode())


@csrf_exempt
@public
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`: Prometheus text format; with `CLIENTDESK_METRICS_TOKEN`, only for
    `Authorization: Bearer` that token (401 otherwise)."""
    if request.method not in {"GET", "HEAD"}:
        response = HttpResponse(status=405)
        response["Allow"] = "GET, HEAD"
        return response
    if not metrics_authorized(request.headers.get("Authorization", "")):
        response = HttpResponse("Unauthorized.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_text(), content_type=prometheus_client.CONTENT_TYPE_LATEST)


# --- A process without a web server (the delivery worker) -------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged: one line every few seconds says nothing."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _metrics_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    try:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found.\n"]
        if environ.get("REQUEST_METHOD") not in {"GET", "HEAD"}:
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        if not metrics_authorized(environ.get("HTTP_AUTHORIZATION", "")):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
            )
            return [b"Unauthorized.\n"]
        body = metrics_text()
        start_response("200 OK", [("Content-Type", prometheus_client.CONTENT_TYPE_LATEST)])
        return [body]
    finally:
        connections.close_all()  # this thread's, opened by the database sources


def metrics_serve(*, host: str, port: int) -> int | None:
    """Serve `GET /metrics` from a thread of this process; returns the port (0 picks a free
    one), or None when it is taken (logged: the process goes on without)."""
    try:
        server = make_server(
            host, port, _metrics_app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
    except OSError as error:
        log.warning("metrics not served on %s:%s: %s", host, port, error)
        return None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    served = int(server.server_port)
    log.info("metrics served on http://%s:%s/metrics", host, served)
    return served
