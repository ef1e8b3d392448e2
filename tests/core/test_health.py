"""`/livez`, `/readyz`, and what every request answers while the database is away: 503 with
`Retry-After` (problem+json under the APIs, a plain page elsewhere), never a 500."""

import uuid

import httpx
import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from tests.servers import free_port, procfile_process

pytestmark = pytest.mark.django_db


def test_livez_and_readyz_on_a_migrated_database(client):
    assert client.get("/livez").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_readyz_names_a_migration_not_applied(client):
    MigrationRecorder(connection).migration_qs.filter(
        app="messaging", name="0006_message_template_edited"
    ).delete()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"].isdigit()
    assert "messaging.0006_message_template_edited" in response.json()["detail"]
    assert client.get("/livez").status_code == 200


DATABASES_AWAY = {
    # A file nobody can open: SQLite fails at once.
    "sqlite": "sqlite:////nonexistent-clientdesk-dir/clientdesk.sqlite3",
    # Nothing listens there: the pool gives up after its timeout.
    "postgresql": "postgres://postgres@127.0.0.1:{port}/clientdesk",
}


@pytest.mark.parametrize("tier", ["web", "events"])
@pytest.mark.parametrize("engine", sorted(DATABASES_AWAY))
def test_while_the_database_is_away_every_request_answers_503(engine, tier, tmp_path):
    url_of_nothing = DATABASES_AWAY[engine].format(port=free_port())
    some_id = uuid.uuid4()
    with (
        procfile_process(tier, tmp_path / f"{tier}.log", DATABASE_URL=url_of_nothing) as (
            url,
            _,
        ),
        httpx.Client(base_url=url, timeout=60) as http,
    ):
        assert http.get("/livez").status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert "does not answer" in ready.json()["detail"]

        staff = {"Authorization": "Bearer cdk_anything", "Idempotency-Key": str(some_id)}
        api_calls = [
            ("POST", f"/api/v1/clients/{some_id}/messages", staff, {"body": "Hello"}),
            # The client's sign-in: the code is looked up.
            ("POST", "/portal/api/v1/session", {}, {"code": "c" * 32}),
        ]
        if engine == "sqlite":  # each PostgreSQL call waits out the pool's timeout
            api_calls.append(("GET", "/api/v1/clients?search=zoe", staff, None))
        for method, path, headers, body in api_calls:
            response = http.request(method, path, headers=headers, json=body)
            assert response.status_code == 503, (path, response.text[:300])
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"].isdigit()
            assert response.json()["type"].endswith("/database-unavailable")

        if engine == "sqlite":
            http.cookies.set("sessionid", "x" * 32)
            page = http.get("/clients/")
            assert page.status_code == 503
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["retry-after"].isdigit()
            assert "not answering" in page.text
