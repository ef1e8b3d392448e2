"""How log records are written: one JSON object per line (`CLIENTDESK_LOG_FORMAT=json`, the
default when stderr is not a terminal) or one readable line (`text`), each carrying the request
it belongs to. No Django here: granian's main process loads these formatters too
(`deploy/granian-logging.json`).

A line holds `ts`, `level`, `logger`, `event` (the message), the request's `request_id`,
`user_id`, `method`, `route` (the URL pattern, never the path: a path or query may hold a
one-time code), `status` and `duration_ms`, and only the extra fields named in `EXTRA_FIELDS`.
Nothing else a record carries is written: an `extra` that is not listed (a request, a body, a
token) never reaches the log."""

import contextvars
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

REQUEST_FIELDS = ("request_id", "user_id", "method", "route", "status", "duration_ms")
# Extra fields a line may carry besides the request's (`log.info(..., extra={...})`).
EXTRA_FIELDS = (
    "delivery_id",
    "channel",
    "event_type",
    "outcome",
    "attempt",
    "status_code",
    "retry_in_s",
    "worker",
    "kind",
)


@dataclass
class LogContext:
    """The request a thread or task is serving; `route` is read when a line is written (the URL
    is resolved after the request begins) and `user_id` filled in once the user is known."""

    request_id: str
    method: str
    route: Callable[[], str] = field(default=lambda: "")
    user_id: str = ""


_current: contextvars.ContextVar[LogContext | None] = contextvars.ContextVar(
    "clientdesk_log_context", default=None
)


def log_context() -> LogContext | None:
    return _current.get()


def log_context_set(context: LogContext | None) -> contextvars.Token[LogContext | None]:
    return _current.set(context)


def log_context_reset(token: contextvars.Token[LogContext | None]) -> None:
    _current.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    data: dict[str, Any] = {}
    context = _current.get()
    if context is not None:
        data.update(
            request_id=context.request_id,
            user_id=context.user_id or None,
            method=context.method,
            route=context.route() or None,
        )
    for name in (*REQUEST_FIELDS, *EXTRA_FIELDS):
        value = record.__dict__.get(name)
        if value is not None:
            data[name] = value
    return {k: v for k, v in data.items() if v is not None}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line (module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """One line for a person at a terminal: time, level, logger, event, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        line = f"{line} {fields}" if fields else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def log_format(value: str | None) -> str:
    """`CLIENTDESK_LOG_FORMAT`: `json` or `text`; unset, text on a terminal and JSON otherwise."""
    chosen = (value or "").strip().lower()
    if chosen in {"json", "text"}:
        return chosen
    if chosen:
        raise ValueError(f"CLIENTDESK_LOG_FORMAT must be json or text, not {value!r}")
    return "text" if sys.stderr.isatty() else "json"


def logging_config(*, level: str, format_name: str | None = None) -> dict[str, Any]:
    """Django's LOGGING: every logger, granian's included, to stderr in the chosen format.
    Python's warnings become log records too, so that stderr holds nothing but log lines."""
    logging.captureWarnings(True)
    chosen = log_format(format_name or os.environ.get("CLIENTDESK_LOG_FORMAT"))
    formatter = JsonFormatter if chosen == "json" else TextFormatter
    console = ["console"]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"clientdesk": {"()": formatter}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "clientdesk"}},
        "root": {"handlers": console, "level": level},
        "loggers": {
            "axes": {"level": "WARNING"},
            # httpx logs every request at INFO: one line per delivery attempt is noise and CPU;
            # the worker logs each outcome instead (delivery/observe.py).
            "httpx": {"level": "WARNING"},
            # Django logs each 4xx with the path, which may hold a one-time code; the access
            # log (core/access.py) has every request by its route. 5xx are still logged.
            "django.request": {"level": "ERROR"},
            "django.server": {"level": "WARNING"},
            # granian's own lines inside each worker process, in the same format.
            "_granian": {"handlers": console, "level": "INFO", "propagate": False},
            "granian.access": {"handlers": console, "level": "INFO", "propagate": False},
        },
    }
