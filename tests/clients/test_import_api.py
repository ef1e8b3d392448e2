"""`POST /api/v1/clients/import` (and the client fields of the outreach): permission, the body
read as a stream of text/csv, the limits, and two overlapping imports at once on a real server."""

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from clientdesk.accounts.services import api_token_create
from clientdesk.audit.models import AuditEntry
from clientdesk.clients.models import Client
from tests.servers import procfile_process

pytestmark = pytest.mark.django_db

URL = "/api/v1/clients/import"
CSV = "text/csv"


def post(api, data, *, content_type=CSV, query="", **extra):
    raw = data.encode() if isinstance(data, str) else data
    return api.generic("POST", URL + query, raw, content_type=content_type, **extra)


def problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def test_the_import_reports_created_updated_and_errors_by_line(agent, api_for):
    api = api_for(agent)
    response = post(
        api,
        "external_id,first_name,last_name,timezone,attr:tier\n"
        "A-1,Zoë,Müller,Europe/Berlin,gold\n"
        "A-2,,Nameless,,\n",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["updated"]) == (1, 0)
    assert body["errors"] == [
        {"line": 3, "errors": {"first_name": ["This field cannot be blank."]}}
    ]
    client = Client.objects.get(external_id="A-1")
    read = api.get(f"/api/v1/clients/{client.id}").json()
    assert read["timezone"] == "Europe/Berlin"
    assert read["outreach_opt_out"] is False and read["outreach_opt_out_at"] is None
    (record,) = AuditEntry.objects.filter(action="clients.imported")
    assert record.actor_id == str(agent.pk)
    assert record.data["via"] == "api"


def test_a_dry_run_previews_and_writes_nothing(agent, api_for):
    response = post(
        api_for(agent), "external_id,first_name\nP-1,Ana\nP-2,\n", query="?dry_run=true"
    )
    body = response.json()
    assert body["dry_run"] is True
    assert (body["created"], body["error_rows"]) == (1, 1)
    assert body["preview"][0]["external_id"] == "P-1"
    assert Client.objects.count() == 0
    assert not AuditEntry.objects.filter(action="clients.imported").exists()


def test_without_add_client_it_is_403_and_nothing_is_read(viewer, api_for):
    body = problem(post(api_for(viewer), "external_id,first_name\nV-1,Val\n"), 403)
    assert body["status"] == 403
    assert Client.objects.count() == 0


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 415),
        ("multipart/form-data; boundary=x", 415),
        ("text/csv; charset=latin-1", 415),
        ("text/csv; charset=utf-8", 200),
    ],
)
def test_the_body_must_be_csv_in_utf8(agent, api_for, content_type, status):
    response = post(api_for(agent), "external_id,first_name\nM-1,Mia\n", content_type=content_type)
    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("", "empty"),
        ("first_name\nNo key\n", "external_id"),
        (",".join(f"c{n}" for n in range(10_000)) + "\n", "10,000 columns"),
    ],
)
def test_an_unusable_file_is_422_naming_why(agent, api_for, data, words):
    body = problem(post(api_for(agent), data), 422)
    assert words in body["detail"]


def test_an_announced_body_over_the_limit_is_413_before_it_is_read(agent, api_for, settings):
    response = post(api_for(agent), "external_id\n", CONTENT_LENGTH=str(2**30))
    body = problem(response, 413)
    assert f"{settings.CLIENTS_IMPORT_MAX_BYTES:,} bytes" in body["detail"]


def test_unknown_query_parameters_are_refused(agent, api_for):
    problem(post(api_for(agent), "external_id\n", query="?dryrun=1"), 422)


def test_client_api_takes_timezone_and_consent_through_its_writer(agent, api_for):
    api = api_for(agent)
    created = api.post(
        "/api/v1/clients",
        {"external_id": "Z-1", "first_name": "Zed", "timezone": "Asia/Tokyo"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["timezone"] == "Asia/Tokyo" and body["outreach_opt_out"] is False
    bad = api.patch(f"/api/v1/clients/{body['id']}", {"timezone": "Mars/Base"}, format="json")
    assert "timezone" in problem(bad, 422)["errors"]
    not_bool = api.patch(
        f"/api/v1/clients/{body['id']}", {"outreach_opt_out": "yes"}, format="json"
    )
    problem(not_bool, 422)
    read_only = api.patch(
        f"/api/v1/clients/{body['id']}",
        {"outreach_opt_out_at": "2026-01-01T00:00:00Z"},
        format="json",
    )
    problem(read_only, 422)
    changed = api.patch(
        f"/api/v1/clients/{body['id']}", {"outreach_opt_out": True}, format="json"
    ).json()
    assert changed["outreach_opt_out"] is True and changed["outreach_opt_out_at"]
    (entry,) = AuditEntry.objects.filter(action="client.consent_changed")
    assert entry.actor_id == str(agent.pk)
    assert entry.data["via"] == "api"
    listed = api.get("/api/v1/clients?search=zed").json()["results"][0]
    assert listed["outreach_opt_out"] is True and listed["timezone"] == "Asia/Tokyo"
    # Creating an opted-out client records the consent in the same go.
    second = api.post(
        "/api/v1/clients",
        {"external_id": "Z-2", "first_name": "Zia", "outreach_opt_out": True},
        format="json",
    ).json()
    assert second["outreach_opt_out"] is True
    assert AuditEntry.objects.filter(action="client.consent_changed").count() == 2


# --- a real server (the Procfile's WSGI web process) -------------------------------------------


@pytest.fixture
def web(tmp_path: Path):
    with procfile_process("web", tmp_path / "web.log") as (url, _pid):
        yield url


def _overlapping(start: int) -> str:
    return "external_id,first_name,last_name\n" + "".join(
        f"O-{n:05},Name{n},From{start}\n" for n in range(start, start + 3_000)
    )


@pytest.mark.django_db(transaction=True)
def test_two_overlapping_imports_at_once_make_no_duplicate_and_no_500(web, agent):
    _, token = api_token_create(user=agent)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": CSV}
    answers: list[httpx.Response] = []

    def send(start: int) -> None:
        answers.append(
            httpx.post(f"{web}{URL}", content=_overlapping(start), headers=headers, timeout=120)
        )

    threads = [threading.Thread(target=send, args=(s,)) for s in (0, 1_500)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(a.status_code for a in answers) == [200, 200], [a.text for a in answers]
    reports = [a.json() for a in answers]
    assert all(r["errors"] == [] for r in reports)
    assert Client.objects.count() == 4_500
    assert sum(r["created"] for r in reports) == 4_500
    assert sum(r["updated"] for r in reports) == 1_500
    assert AuditEntry.objects.filter(action="clients.imported").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_1_gb_upload_is_refused_without_being_read(web, agent):
    _, token = api_token_create(user=agent)
    host, port = web.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: text/csv\r\nContent-Length: {2**30}\r\n\r\n".encode()
            + b"external_id,first_name\n"
            + b"G-1,Giga\n" * 10_000
        )
        started = time.monotonic()
        answer = sock.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert "application/problem+json" in answer
    assert time.monotonic() - started < 30
    assert Client.objects.count() == 0
    # The server answers the next request as ever.
    assert httpx.get(f"{web}/livez", timeout=10).status_code == 200
