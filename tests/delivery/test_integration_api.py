import base64

import pytest

from clientdesk.delivery.models import OutgoingEndpoint

pytestmark = pytest.mark.django_db
URL = "/api/v1/integration/outgoing-endpoint"


def test_put_creates_the_endpoint_and_shows_the_secret_once(
    administrator, api_for, receiver, allow_loopback
):
    api = api_for(administrator)
    created = api.put(URL, {"url": receiver.url, "enabled": True}, format="json")
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    read = api.get(URL).json()
    assert "secret" not in read
    assert read["url"] == receiver.url
    updated = api.put(URL, {"url": receiver.url, "enabled": False}, format="json")
    assert updated.status_code == 200
    assert updated.json()["secret"] == secret  # saving does not change the secret
    assert OutgoingEndpoint.objects.get().enabled is False


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/x", "http"),
        ("not a url", ""),
        ("http://127.0.0.1:9/x", "loopback"),
        ("http://localhost/x", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://10.1.2.3/x", "private"),
        ("http://[::1]/x", "loopback"),
        ("https://user:pass@example.com/x", ""),
    ],
)
def test_unsafe_or_malformed_urls_are_refused_and_nothing_saved(administrator, api_for, url, words):
    response = api_for(administrator).put(URL, {"url": url, "enabled": True}, format="json")
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert words in response.json()["detail"].lower()
    assert OutgoingEndpoint.objects.count() == 0


@pytest.mark.parametrize("role", ["Manager", "Agent", "Viewer"])
def test_only_integration_managers_may_read_or_change_it(make_user, api_for, role):
    api = api_for(make_user(role))
    assert api.get(URL).status_code == 403
    assert api.put(URL, {"url": "https://example.com/x"}, format="json").status_code == 403


def test_send_test_event_reports_the_receivers_answer(administrator, api_for, receiver, endpoint):
    receiver.respond = lambda r: (202, {}, b"thanks")
    result = api_for(administrator).post(f"{URL}/test").json()
    assert result["ok"] is True
    assert result["status_code"] == 202
    assert result["response_excerpt"] == "thanks"
    (request,) = receiver.wait_for(1)
    assert request.json["type"] == "test.ping"
    assert request.verified


def test_rotate_via_api(administrator, api_for, endpoint):
    rotated = api_for(administrator).post(f"{URL}/rotate-secret").json()
    assert rotated["secret"] != endpoint.secret
    assert rotated["previous_secret_valid_until"]


def test_message_detail_api_shows_deliveries_and_attempts(
    administrator, agent, api_for, receiver, endpoint, client_obj
):
    from tests.delivery.test_engine import send, step

    receiver.respond = lambda r: (500, {}, b"boom")
    result = send(agent, client_obj)
    step()
    detail = api_for(agent).get(f"/api/v1/messages/{result.message_id}").json()
    (delivery,) = detail["deliveries"]
    assert delivery["channel"] == "webhook"
    assert delivery["status"] == "pending"
    assert delivery["last_status_code"] == 500
    assert delivery["attempts"][0]["status_code"] == 500
    assert delivery["attempts"][0]["response_excerpt"] == "boom"
    listed = api_for(agent).get(f"/api/v1/clients/{client_obj.id}/messages").json()
    assert listed["results"][0]["deliveries"][0]["status"] == "pending"
