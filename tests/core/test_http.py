import re

import pytest
from rest_framework.test import APIClient


@pytest.mark.django_db
def test_healthz_answers_when_the_database_does(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.django_db
def test_unknown_api_path_is_a_404_problem(agent, api_for):
    response = api_for(agent).get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert "/api/v1/nothing-here" in response.json()["detail"]


@pytest.mark.django_db
def test_wrong_method_is_a_405_problem(agent, api_for, client_obj):
    response = api_for(agent).delete(f"/api/v1/clients/{client_obj.id}")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.django_db
def test_openapi_schema_documents_the_contract_paths(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    paths = set(schema["paths"])
    assert {
        "/api/v1/clients",
        "/api/v1/clients/{client_id}",
        "/api/v1/clients/{client_id}/messages",
        "/api/v1/clients/{client_id}/activity",
        "/api/v1/messages/{message_id}",
    } <= paths
    send = schema["paths"]["/api/v1/clients/{client_id}/messages"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in send["parameters"])


@pytest.mark.django_db
def test_api_docs_page_uses_local_assets_only(client):
    html = client.get("/api/docs/").content.decode()
    # Every script, stylesheet and image comes from this server: no absolute or
    # protocol-relative URL (a "cdn" substring test failed on random CSRF tokens).
    assets = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', html)
    assert assets
    assert [a for a in assets if re.match(r"(?:[a-z][a-z0-9+.-]*:)?//", a, re.I)] == []
    assert "/static/drf_spectacular_sidecar/" in html


@pytest.mark.django_db
def test_session_authenticated_api_writes_need_csrf(agent, client_obj):
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(agent)
    response = api.post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="csrf",
    )
    assert response.status_code == 403


def test_openapi_document_is_valid_and_warning_free(capsys):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    assert "Warning" not in capsys.readouterr().err
