"""Signing and posting webhooks against real HTTP servers on loopback; nothing leaves the machine
(names other than localhost are answered by a stand-in resolver pointing at loopback)."""

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from clientdesk.delivery import transport
from clientdesk.delivery.models import new_signing_secret, new_webhook_id
from clientdesk.delivery.transport import HttpResult, parse_retry_after, post, sign_headers

BODY = '{"type":"message.sent","timestamp":"2026-11-26T10:00:00Z","data":{"text":"Grüße"}}'
TRICKLE_PAUSE = 0.05


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class LoopbackServer(ThreadingHTTPServer):
    """A webhook receiver on loopback; what each path does is in Handler."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), Handler)
        self.received: list[Received] = []
        self.secrets: list[str] = []
        self.stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are what several tests are about."""


class Handler(BaseHTTPRequestHandler):
    server: LoopbackServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.received.append(
            Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        route: Callable[[bytes], None] = getattr(self, "route_" + self.path.strip("/"), self.echo)
        try:
            route(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def echo(self, body: bytes) -> None:
        self.reply(200, b'{"received": true}', content_type="application/json")

    def route_verify(self, body: bytes) -> None:
        """Checks the signature with each configured secret on its own, as a receiver holding
        only that one would."""
        verified = []
        for secret in self.server.secrets:
            try:
                Webhook(secret).verify(body, dict(self.headers.items()))
            except WebhookVerificationError:
                verified.append(False)
            else:
                verified.append(True)
        status = 200 if verified and all(verified) else 401
        self.reply(status, json.dumps({"verified": verified}).encode())

    def route_error(self, body: bytes) -> None:
        self.reply(500, b"internal error")

    def route_busy(self, body: bytes) -> None:
        self.reply(429, b"slow down", retry_after="7")

    def route_gone(self, body: bytes) -> None:
        self.reply(410, b"endpoint removed")

    def route_redirect(self, body: bytes) -> None:
        self.reply(302, location="http://169.254.169.254/latest/meta-data/")

    def route_slow(self, body: bytes) -> None:
        self.server.stopping.wait(5)
        self.reply(200, b"too late")

    def route_trickle_body(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-length", "1000")
        self.end_headers()
        for _ in range(1000):
            self.wfile.write(b"x")
            self.wfile.flush()
            if self.server.stopping.wait(TRICKLE_PAUSE):
                return

    def route_trickle_headers(self, body: bytes) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nx-slow: ")
        for _ in range(1000):
            self.wfile.write(b"x")
            self.wfile.flush()
            if self.server.stopping.wait(TRICKLE_PAUSE):
                return

    def route_huge(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-length", str(5 * 1024 * 1024))
        self.end_headers()
        for _ in range(80):
            self.wfile.write(b"a" * 65536)

    def route_hang_up(self, body: bytes) -> None:
        self.close_connection = True

    def route_latin1(self, body: bytes) -> None:
        self.reply(400, "café".encode("latin-1"), content_type="text/plain; charset=latin-1")

    def route_garbled(self, body: bytes) -> None:
        self.reply(400, b"bad \xff\xfe bytes", content_type="text/plain; charset=utf-8")


@contextlib.contextmanager
def serving(server: LoopbackServer) -> Iterator[LoopbackServer]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    with serving(LoopbackServer()) as server:
        yield server


@pytest.fixture
def loopback_v6() -> Iterator[LoopbackServer]:
    try:
        server = LoopbackServer("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with serving(server):
        yield server


@dataclass
class FakeDns:
    answers: dict[str, list[str]] = field(default_factory=dict)
    lookups: Counter[str] = field(default_factory=Counter)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Answers for the names in `answers`, counting lookups; IP literals still reach the real
    resolver, told not to look anything up."""
    dns = FakeDns()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        if host not in dns.answers:
            return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        dns.lookups[host] += 1
        if not dns.answers[host]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port, 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port))
            for ip in dns.answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return dns


def signed(*secrets: str, body: str = BODY) -> dict[str, str]:
    return sign_headers(
        webhook_id=new_webhook_id(), timestamp=datetime.now(UTC), body=body, secrets=list(secrets)
    )


def send(url: str, *, allow_private: bool = True, **options: Any) -> HttpResult:
    return post(
        url=url,
        body=BODY.encode(),
        headers=signed(new_signing_secret()),
        allow_private=allow_private,
        **options,
    )


# --- sign_headers -------------------------------------------------------------------------------


def test_sign_headers_follow_standard_webhooks() -> None:
    secret = new_signing_secret()
    at = datetime(2026, 11, 26, 10, 0, 0, 500000, tzinfo=UTC)
    headers = sign_headers(webhook_id="msg_1", timestamp=at, body=BODY, secrets=[secret])
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1795687200",
        "webhook-signature": Webhook(secret).sign("msg_1", at, BODY),
        "content-type": "application/json",
        "user-agent": "Clientdesk-Webhooks/1",
    }
    assert headers["webhook-signature"].startswith("v1,")


def test_a_timestamp_in_another_zone_signs_the_same_instant() -> None:
    secret = new_signing_secret()
    now = datetime.now(UTC)
    in_utc = sign_headers(webhook_id="msg_1", timestamp=now, body=BODY, secrets=[secret])
    elsewhere = now.astimezone(timezone(timedelta(hours=-5)))
    in_other_zone = sign_headers(
        webhook_id="msg_1", timestamp=elsewhere, body=BODY, secrets=[secret]
    )
    assert in_other_zone == in_utc
    Webhook(secret).verify(BODY, in_other_zone)


def test_a_naive_timestamp_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign_headers(
            webhook_id="msg_1", timestamp=datetime.now(), body=BODY, secrets=[new_signing_secret()]
        )


def test_sign_headers_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        sign_headers(webhook_id="msg_1", timestamp=datetime.now(UTC), body=BODY, secrets=[])


# --- post: what arrives --------------------------------------------------------------------


def test_the_receiver_verifies_the_signed_body(loopback: LoopbackServer) -> None:
    secret = new_signing_secret()
    loopback.secrets = [secret]
    headers = signed(secret)

    result = post(
        url=loopback.url("/verify"), body=BODY.encode(), headers=headers, allow_private=True
    )

    assert result == HttpResult(
        status_code=200,
        duration_ms=result.duration_ms,
        excerpt='{"verified": [true]}',
        error="",
        retry_after=None,
    )
    assert result.ok
    [arrived] = loopback.received
    assert arrived.body == BODY.encode()
    assert arrived.headers["host"] == f"127.0.0.1:{loopback.port}"
    assert arrived.headers["webhook-id"] == headers["webhook-id"]
    assert arrived.headers["content-type"] == "application/json"
    assert arrived.headers["user-agent"] == "Clientdesk-Webhooks/1"


def test_during_rotation_either_secret_alone_verifies(loopback: LoopbackServer) -> None:
    current, previous = new_signing_secret(), new_signing_secret()
    loopback.secrets = [current, previous]
    headers = signed(current, previous)
    assert len(headers["webhook-signature"].split(" ")) == 2

    result = post(
        url=loopback.url("/verify"), body=BODY.encode(), headers=headers, allow_private=True
    )

    assert result.ok
    assert json.loads(result.excerpt) == {"verified": [True, True]}


def test_a_changed_body_does_not_verify(loopback: LoopbackServer) -> None:
    secret = new_signing_secret()
    loopback.secrets = [secret]
    result = post(
        url=loopback.url("/verify"),
        body=BODY.replace("Grüße", "Hello").encode(),
        headers=signed(secret),
        allow_private=True,
    )
    assert (result.status_code, result.ok) == (401, False)


def test_a_secret_not_used_for_signing_does_not_verify(loopback: LoopbackServer) -> None:
    loopback.secrets = [new_signing_secret()]
    result = send(loopback.url("/verify"))
    assert result.status_code == 401
    assert json.loads(result.excerpt) == {"verified": [False]}


def test_ipv6_loopback(loopback_v6: LoopbackServer) -> None:
    result = send(loopback_v6.url("/", host="::1"))
    assert result.ok
    assert loopback_v6.received[0].headers["host"] == f"[::1]:{loopback_v6.port}"


def test_connects_to_the_checked_address_keeping_the_host_name(
    loopback: LoopbackServer, fake_dns: FakeDns
) -> None:
    fake_dns.answers["hooks.example"] = ["127.0.0.1"]
    result = send(f"http://hooks.example:{loopback.port}/in?source=clientdesk")
    assert result.ok
    [arrived] = loopback.received
    assert arrived.path == "/in?source=clientdesk"
    assert arrived.headers["host"] == f"hooks.example:{loopback.port}"
    # Resolved once, by the guard: the connection did not ask DNS again (no rebinding window).
    assert fake_dns.lookups["hooks.example"] == 1


def test_the_shared_connections_go_only_where_a_post_checked(loopback: LoopbackServer) -> None:
    """The pool under `post()` connects to the address `post()` checked for the request in
    hand, and to nothing else: a request sent past it reaches no server."""
    with pytest.raises(httpx.ConnectError, match="not the address checked"):
        transport._CLIENT.post(loopback.url("/"), content=BODY.encode())
    assert loopback.received == []
    assert send(loopback.url("/")).ok


def test_tries_the_next_address_when_one_refuses(
    loopback: LoopbackServer, fake_dns: FakeDns
) -> None:
    # Nothing listens on ::1 at this port, so the first address refuses the connection.
    fake_dns.answers["hooks.example"] = ["::1", "127.0.0.1"]
    result = send(f"http://hooks.example:{loopback.port}/")
    assert result.ok
    assert len(loopback.received) == 1


def test_concurrent_posts_share_the_client(loopback: LoopbackServer) -> None:
    results: list[HttpResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(send(loopback.url("/")))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.ok for r in results] == [True] * 8
    assert len(loopback.received) == 8


# --- post: what comes back -------------------------------------------------------------------


def test_server_error(loopback: LoopbackServer) -> None:
    result = send(loopback.url("/error"))
    assert (result.status_code, result.ok, result.excerpt, result.error) == (
        500,
        False,
        "internal error",
        "",
    )


def test_too_many_requests_carries_retry_after(loopback: LoopbackServer) -> None:
    result = send(loopback.url("/busy"))
    assert (result.status_code, result.retry_after, result.ok) == (429, 7.0, False)


def test_gone(loopback: LoopbackServer) -> None:
    result = send(loopback.url("/gone"))
    assert (result.status_code, result.ok, result.excerpt) == (410, False, "endpoint removed")


def test_redirects_are_not_followed(loopback: LoopbackServer) -> None:
    result = send(loopback.url("/redirect"))
    assert (result.status_code, result.ok) == (302, False)
    assert result.error == "redirect to http://169.254.169.254/latest/meta-data/ not followed"
    assert len(loopback.received) == 1


def test_excerpt_uses_the_declared_charset(loopback: LoopbackServer) -> None:
    assert send(loopback.url("/latin1")).excerpt == "café"


def test_undecodable_bytes_are_replaced(loopback: LoopbackServer) -> None:
    assert send(loopback.url("/garbled")).excerpt == "bad \ufffd\ufffd bytes"


def test_a_huge_response_is_read_only_up_to_the_cap(loopback: LoopbackServer) -> None:
    started = time.monotonic()
    result = send(loopback.url("/huge"))
    assert result.ok
    assert result.excerpt == "a" * 65536
    assert time.monotonic() - started < 5


def test_the_cap_can_be_lowered(loopback: LoopbackServer) -> None:
    assert send(loopback.url("/huge"), max_response_bytes=100).excerpt == "a" * 100


# --- post: network trouble ------------------------------------------------------------------


def test_a_slow_response_times_out(loopback: LoopbackServer) -> None:
    started = time.monotonic()
    result = send(loopback.url("/slow"), total_timeout=0.5)
    elapsed = time.monotonic() - started
    assert (result.status_code, result.error) == (None, "timed out after 0.5 s")
    assert 0.45 < elapsed < 1.5
    assert 450 <= result.duration_ms < 1500


def test_a_trickled_body_is_cut_off_at_the_total_timeout(loopback: LoopbackServer) -> None:
    started = time.monotonic()
    result = send(loopback.url("/trickle_body"), total_timeout=0.5)
    assert time.monotonic() - started < 1.5
    # The status had arrived, so it stands; the excerpt holds what came in time.
    assert (result.status_code, result.error) == (200, "")
    assert 0 < len(result.excerpt) < 1000
    assert set(result.excerpt) == {"x"}


def test_trickled_headers_time_out_too(loopback: LoopbackServer) -> None:
    started = time.monotonic()
    result = send(loopback.url("/trickle_headers"), total_timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert (result.status_code, result.error) == (None, "timed out after 0.5 s")


def test_connection_closed_without_an_answer(loopback: LoopbackServer) -> None:
    result = send(loopback.url("/hang_up"))
    assert (result.status_code, result.error) == (None, "connection closed before a response")


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = send(f"http://127.0.0.1:{port}/")
    assert (result.status_code, result.error, result.ok) == (None, "connection refused", False)


def test_a_refused_address_is_reported_not_raised(loopback: LoopbackServer) -> None:
    result = send(loopback.url("/"), allow_private=False)
    assert result == HttpResult(
        status_code=None,
        duration_ms=result.duration_ms,
        excerpt="",
        error="refused: 127.0.0.1 is not a public address (loopback)",
        retry_after=None,
    )
    assert loopback.received == []


def test_a_name_resolving_to_loopback_is_refused(loopback: LoopbackServer) -> None:
    result = send(f"http://localhost:{loopback.port}/", allow_private=False)
    assert result.error == (
        "refused: localhost resolves to 127.0.0.1, which is not a public address (loopback)"
    )
    assert loopback.received == []


def test_an_unresolvable_name_is_reported(fake_dns: FakeDns) -> None:
    fake_dns.answers["nowhere.example"] = []
    result = send("https://nowhere.example/hook")
    assert result.status_code is None
    assert result.error.startswith("nowhere.example could not be resolved")


def test_a_malformed_url_is_reported() -> None:
    result = send("ftp://example.com/hook")
    assert result.status_code is None
    assert "http:// or https://" in result.error


# --- post: TLS ----------------------------------------------------------------------------------


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=hooks.example",
         "-addext", "subjectAltName=DNS:hooks.example", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_uses_the_host_name_for_sni_and_checks_the_certificate(
    self_signed: tuple[Path, Path], fake_dns: FakeDns
) -> None:
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server_names: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: server_names.append(name)
    server = LoopbackServer()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake_dns.answers["hooks.example"] = ["127.0.0.1"]

    with serving(server):
        result = send(f"https://hooks.example:{server.port}/")

    assert server_names == ["hooks.example"]
    assert result.status_code is None
    assert result.error.startswith("TLS certificate not accepted: self")
    assert server.received == []


# --- parse_retry_after -----------------------------------------------------------------------


NOW = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Thu, 26 Nov 2026 10:02:00 GMT", 120.0),
        ("Thursday, 26-Nov-26 10:00:30 GMT", 30.0),
        ("Thu, 26 Nov 2026 09:00:00 GMT", 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds
