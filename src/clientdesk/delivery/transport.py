"""One HTTP POST of a signed webhook to a checked address, reported as an HttpResult."""

import contextlib
import contextvars
import email.utils
import errno
import ipaddress
import math
import re
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx
from standardwebhooks import Webhook

from clientdesk.delivery.ssrf import (
    IPAddress,
    UnsafeUrl,
    WebhookTarget,
    parse_webhook_url,
    resolve_checked,
)

USER_AGENT = "Clientdesk-Webhooks/1"
MAX_LOCATION_CHARS = 300


def sign_headers(
    *, webhook_id: str, timestamp: datetime, body: str, secrets: list[str]
) -> dict[str, str]:
    """Standard Webhooks headers for `body`, with one `v1,` signature per secret so that a
    receiver holding either the current or the previous secret accepts it during rotation.

    Send `body.encode()` (UTF-8) exactly: the signature covers these characters."""
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    if not secrets:
        raise ValueError("at least one signing secret is needed")
    # Webhook.sign() replaces the zone instead of converting, so hand it UTC.
    timestamp = timestamp.astimezone(UTC)
    signatures = [Webhook(secret).sign(webhook_id, timestamp, body) for secret in secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": " ".join(dict.fromkeys(signatures)),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@dataclass(frozen=True)
class HttpResult:
    status_code: int | None
    duration_ms: int
    excerpt: str
    error: str
    retry_after: float | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# --- The connection pool -------------------------------------------------------------------
#
# httpx's own transport has no parameter for httpcore's network backend, so this is an httpx
# transport (its documented extension point) over an httpcore connection pool (its public API)
# built with our backend. The backend keeps two promises for every connection:
#
# - It connects only to the address `post()` checked for this request: the URL names that
#   address, so nothing resolves the host again, and any other host is refused here.
# - httpx's timeouts apply to each read separately, so a server sending one byte a second (in
#   the headers as much as in the body) could hold a worker thread for hours. Each socket
#   operation is given at most what is left of the request's total deadline.
#
# Both live in a context variable because the pool's sockets are shared, while each request
# runs in its caller's thread from start to end.


@dataclass(frozen=True)
class _Exchange:
    address: IPAddress
    deadline: float


_exchange_now: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar(
    "webhook_exchange", default=None
)


def _time_left(timeout: float | None, timeout_error: type[Exception]) -> float | None:
    exchange = _exchange_now.get()
    if exchange is None:
        return timeout
    left = exchange.deadline - time.monotonic()
    if left <= 0:
        raise timeout_error("the total time for the request ran out")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CheckedBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        exchange = _exchange_now.get()
        if exchange is None or _address(host) != exchange.address:
            raise httpcore.ConnectError(f"{host} is not the address checked for this request")
        timeout = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        )


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


# httpcore's errors as httpx's, most specific first: the callers below speak httpx.
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        for core_error, httpx_error in _HTTPX_ERRORS:
            if isinstance(error, core_error):
                raise httpx_error(str(error)) from error
        raise


class _ResponseBody(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()


class _CheckedTransport(httpx.BaseTransport):
    def __init__(self, *, limits: httpx.Limits) -> None:
        self._connections = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        with _as_httpx_errors():
            response = self._connections.handle_request(
                httpcore.Request(
                    method=request.method,
                    url=httpcore.URL(
                        scheme=request.url.raw_scheme,
                        host=request.url.raw_host,
                        port=request.url.port,
                        target=request.url.raw_path,
                    ),
                    headers=request.headers.raw,
                    content=request.stream,
                    extensions=request.extensions,
                )
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseBody(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._connections.close()


# Shared by the worker threads (httpx.Client is thread-safe): a worker's attempts in flight
# (`run_worker --concurrency`, 16 by default, at most 64) each hold one connection, kept alive
# for the next; the cap keeps a runaway from opening hundreds.
_CLIENT = httpx.Client(
    transport=_CheckedTransport(
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=5)
    ),
    trust_env=False,
    follow_redirects=False,
    # No compression: the excerpt is capped by bytes read, and a small compressed response can
    # expand into a very large one.
    headers={"accept-encoding": "identity", "user-agent": USER_AGENT},
)


def post(
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    allow_private: bool,
    connect_timeout: float = 5.0,
    total_timeout: float = 15.0,
    max_response_bytes: int = 65536,
) -> HttpResult:
    """POST `body` to `url` once, never following redirects, within `total_timeout` seconds.

    Never raises for network trouble or a refused address: those come back with
    `status_code=None` and `error` saying what happened. An error mentioning "timed out" means
    the endpoint was too slow."""
    started = time.monotonic()
    try:
        target = parse_webhook_url(url)
        addresses = resolve_checked(target.host, target.port, allow_private=allow_private)
    except UnsafeUrl as refused:
        return _result(started, error=refused.detail[:1].lower() + refused.detail[1:].rstrip("."))

    deadline = started + total_timeout
    failures: list[tuple[IPAddress, str]] = []
    for address in addresses:
        token = _exchange_now.set(_Exchange(address=address, deadline=deadline))
        try:
            return _exchange(
                target,
                address,
                body=body,
                headers=headers,
                connect_timeout=min(connect_timeout, total_timeout),
                total_timeout=total_timeout,
                max_response_bytes=max_response_bytes,
                started=started,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            # Nothing reached the server, so the next address may be tried safely.
            failures.append((address, _describe(error, connect_timeout, total_timeout)))
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            return _result(started, error=_describe(error, connect_timeout, total_timeout))
        finally:
            _exchange_now.reset(token)
    return _result(started, error=_summarise(failures))


def _exchange(
    target: WebhookTarget,
    address: IPAddress,
    *,
    body: bytes,
    headers: dict[str, str],
    connect_timeout: float,
    total_timeout: float,
    max_response_bytes: int,
    started: float,
) -> HttpResult:
    # The URL names the checked address, so nothing resolves the host again (a second lookup
    # could answer differently); Host and the TLS server name keep the real host name.
    literal = f"[{address}]" if address.version == 6 else str(address)
    query = f"?{target.query}" if target.query else ""
    request_headers = httpx.Headers(headers)
    request_headers["host"] = target.host_header
    request = _CLIENT.build_request(
        "POST",
        f"{target.scheme}://{literal}:{target.port}{target.path}{query}",
        content=body,
        headers=request_headers,
        timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
        extensions={"sni_hostname": target.host} if target.scheme == "https" else None,
    )
    response = _CLIENT.send(request, stream=True)
    try:
        content = _read_capped(response, max_response_bytes)
    finally:
        response.close()
    error = ""
    if 300 <= response.status_code < 400:
        location = response.headers.get("location", "")[:MAX_LOCATION_CHARS]
        error = (
            f"redirect to {location} not followed"
            if location
            else f"HTTP {response.status_code} redirect not followed"
        )
    return _result(
        started,
        status_code=response.status_code,
        excerpt=_decode(content, response.charset_encoding),
        error=error,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    except httpx.HTTPError:
        # The status has arrived, and it alone decides the outcome: a body cut off by the
        # deadline or a dropped connection only shortens the excerpt.
        pass
    return b"".join(chunks)[:limit]


def _decode(content: bytes, charset: str | None) -> str:
    try:
        return content.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP-date); None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # An HTTP-date is always GMT; the obsolete forms parse without a zone.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _result(
    started: float,
    *,
    status_code: int | None = None,
    excerpt: str = "",
    error: str = "",
    retry_after: float | None = None,
) -> HttpResult:
    return HttpResult(
        status_code=status_code,
        duration_ms=int((time.monotonic() - started) * 1000),
        excerpt=excerpt,
        error=error,
        retry_after=retry_after,
    )


def _summarise(failures: list[tuple[IPAddress, str]]) -> str:
    reasons = list(dict.fromkeys(reason for _address, reason in failures))
    if len(reasons) == 1:
        return reasons[0]
    return "; ".join(f"{address}: {reason}" for address, reason in failures)


def _describe(error: Exception, connect_timeout: float, total_timeout: float) -> str:
    if isinstance(error, httpx.TimeoutException):
        if isinstance(error, httpx.ConnectTimeout) and _deadline_left():
            return f"connection timed out after {connect_timeout:g} s"
        return f"timed out after {total_timeout:g} s"
    if isinstance(error, httpx.InvalidURL):
        return f"invalid request URL ({error})"
    cause = _root_cause(error)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause.reason or cause}"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, httpx.WriteError):
        return "connection closed while sending the request"
    if isinstance(cause, ConnectionResetError):
        return "connection reset before a response"
    if isinstance(error, httpx.RemoteProtocolError):
        if "without sending" in str(error):
            return "connection closed before a response"
        return f"invalid HTTP response ({error})"
    if isinstance(cause, OSError) and cause.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[cause.errno]
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


_ERRNO_WORDS = {
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EADDRNOTAVAIL: "address not available",
}


def _deadline_left() -> bool:
    exchange = _exchange_now.get()
    return exchange is not None and time.monotonic() < exchange.deadline


def _root_cause(error: BaseException) -> BaseException:
    # httpcore's pool re-raises with `from None`, which hides the cause but keeps the context.
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            return error
        error = inner
        seen.add(id(error))
