"""Log lines: with `CLIENTDESK_LOG_FORMAT=json` every line the Procfile's processes write to
stderr is one JSON object; an access line per request carries the request id echoed as
`X-Request-ID`, the route, status and duration; the worker logs each delivery's outcome; and no
line holds a message body, a token, a password or a secret."""

import io
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from clientdesk.accounts.services import api_token_create
from clientdesk.core.logs import JsonFormatter, TextFormatter, log_format, logging_config
from clientdesk.delivery.services.endpoints import endpoint_configure
from tests.core.observed import tier, wait_until
from tests.servers import SSEReader

PASSWORD = "Plum-Tangerine-4471-secret"


@pytest.fixture
def hooks() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    class Hooks(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks", received
    server.shutdown()
    server.server_close()


def _lines(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)  # every line, or the test fails naming it
        assert isinstance(record, dict), line
        assert {"ts", "level", "logger", "event"} <= set(record), line
        records.append(record)
    return records


@pytest.mark.django_db(transaction=True)
def test_every_line_is_json_with_the_request_id_and_holds_no_secret(
    tmp_path, make_user, client_obj, settings, hooks
):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    # A hasher the web process knows (tests use a fast one it does not).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    url, received = hooks
    administrator = make_user("Administrator")
    endpoint, _ = endpoint_configure(user=administrator, url=url, enabled=True)
    agent = make_user("Agent", password=PASSWORD)
    _, token = api_token_create(user=agent)
    body = f"Recognisable body {uuid.uuid4().hex}"
    secrets = [body, token, PASSWORD, endpoint.secret, settings.SECRET_KEY]

    with (
        # Plain HTTP on loopback: cookies without Secure, so the sign-in keeps its session.
        tier("web", tmp_path, WEB_CONCURRENCY="2", SECURE_COOKIES="0") as web,
        tier("events", tmp_path) as events,
        tier("worker", tmp_path) as worker,
    ):
        # A staff user signs in with a password and opens a page.
        browser = httpx.Client(base_url=web.url, timeout=30)
        page = browser.get("/accounts/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert csrf
        signed_in = browser.post(
            "/accounts/login/",
            data={"username": agent.username, "password": PASSWORD, "csrfmiddlewaretoken": csrf[1]},
        )
        assert signed_in.status_code == 302, signed_in.text
        clients_page = browser.get("/clients/")
        assert clients_page.status_code == 200
        # A request id given is kept and echoed; none given, one is made and echoed.
        given = f"test-{uuid.uuid4().hex}"
        echoed = browser.get("/livez", headers={"X-Request-ID": given})
        assert echoed.headers["X-Request-ID"] == given
        # A message with a recognisable body, sent with a token, delivered by the worker.
        sent = httpx.post(
            f"{web.url}/api/v1/clients/{client_obj.id}/messages",
            json={"body": body},
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
            timeout=30,
        )
        assert sent.status_code == 201, sent.text
        wait_until(lambda: any(body.encode() in r for r in received), what="the webhook")
        # A stream with the token, and one with the token in the query (refused: logged too).
        stream = SSEReader(
            f"{events.url}/api/v1/events", headers={"Authorization": f"Bearer {token}"}
        )
        stream.close()
        httpx.get(f"{events.url}/api/v1/events?access_token={token}", timeout=30)
        wait_until(
            lambda: "delivered" in worker.stderr.read_text(), what="the worker's delivery line"
        )

    logs = {t.name: _lines(t.stderr.read_text()) for t in (web, events, worker)}
    everything = "\n".join(
        t.stderr.read_text() + t.stdout.read_text() for t in (web, events, worker)
    )
    for secret in secrets:
        assert secret not in everything, f"a log holds {secret[:12]}..."
    assert body not in json.dumps(logs)

    access = [r for r in logs["web"] if r["logger"] == "clientdesk.access"]
    kept = [r for r in access if r["request_id"] == given]
    assert len(kept) == 1
    assert kept[0]["route"] == "/livez"
    assert kept[0]["method"] == "GET"
    assert kept[0]["status"] == 200
    assert isinstance(kept[0]["duration_ms"], float | int)
    made = [r for r in access if r["request_id"] == sent.headers["X-Request-ID"]]
    assert len(made) == 1, (sent.headers, [r for r in access if r["method"] == "POST"])
    assert made[0]["route"] == "/api/v1/clients/<id:client_id>/messages"
    assert made[0]["status"] == 201
    assert made[0]["user_id"] == str(agent.pk)
    page_line = [r for r in access if r["request_id"] == clients_page.headers["X-Request-ID"]]
    assert page_line[0]["user_id"] == str(agent.pk)
    assert page_line[0]["route"] == "/clients/"
    assert any(r.get("route") == "/api/v1/events" for r in logs["events"])
    outcomes = [r for r in logs["worker"] if r["logger"] == "clientdesk.delivery"]
    delivered = [r for r in outcomes if r.get("outcome") == "delivered"]
    assert delivered
    assert {"delivery_id", "channel", "attempt", "event_type"} <= set(delivered[0])
    # granian's own lines, main process included, are JSON too.
    assert any(r["logger"].startswith("_granian") for r in logs["web"])


def _record(**extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(
        "clientdesk.test", logging.INFO, __file__, 1, "hello %s", ("x",), None
    )
    record.__dict__.update(extra)
    return record


def test_only_named_fields_reach_a_line():
    line = json.loads(
        JsonFormatter().format(_record(channel="webhook", body="secret body", token="t0ken"))
    )
    assert line["event"] == "hello x"
    assert line["channel"] == "webhook"
    assert "body" not in line
    assert "token" not in line
    assert line["level"] == "info"
    assert line["ts"].endswith("Z")


def test_text_on_a_terminal_json_otherwise(monkeypatch):
    assert log_format("json") == "json"
    assert log_format("TEXT") == "text"
    with pytest.raises(ValueError, match="json or text"):
        log_format("xml")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert log_format(None) == "json"
    monkeypatch.setattr("sys.stderr", Terminal())
    assert log_format(None) == "text"
    config = logging_config(level="INFO", format_name="text")
    assert config["formatters"]["clientdesk"]["()"] is TextFormatter
    text = TextFormatter().format(_record(outcome="delivered"))
    assert "hello x" in text
    assert "outcome=delivered" in text
