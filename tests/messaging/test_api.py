import uuid

import pytest

from clientdesk.messaging.models import Message
from tests.racing import race

pytestmark = pytest.mark.django_db


def _url(client):
    return f"/api/v1/clients/{client.id}/messages"


def _post(api, client, body, key="key-1", **extra):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return api.post(_url(client), body, format="json", **headers, **extra)


def _problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def test_send_returns_201_with_the_message(agent, api_for, client_obj):
    response = _post(api_for(agent), client_obj, {"body": "Hi {{firstName}}"}, key="k-201")
    assert response.status_code == 201
    body = response.json()
    assert body["body"] == "Hi Zoë"
    assert body["source"] == "Hi {{firstName}}"
    assert body["client_id"] == str(client_obj.id)
    assert body["sender"] == {"id": str(agent.id), "username": agent.username, "name": "Alex Agent"}
    assert body["direction"] == "out"
    message = Message.objects.get(pk=body["id"])
    assert message.request_id == response["X-Request-ID"]


def test_request_id_header_is_recorded(agent, api_for, client_obj):
    response = _post(api_for(agent), client_obj, {"body": "hi"}, HTTP_X_REQUEST_ID="trace-abc.123")
    assert response["X-Request-ID"] == "trace-abc.123"
    assert Message.objects.get().request_id == "trace-abc.123"


def test_retry_with_same_key_replays_the_first_response(agent, api_for, client_obj):
    api = api_for(agent)
    first = _post(api, client_obj, {"body": "Hello"})
    again = _post(api, client_obj, {"body": "Hello"})
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 1


def test_same_key_other_body_is_422(agent, api_for, client_obj):
    api = api_for(agent)
    _post(api, client_obj, {"body": "Hello"})
    body = _problem(_post(api, client_obj, {"body": "Goodbye"}), 422)
    assert "Idempotency-Key" in body["errors"]
    assert Message.objects.get().body == "Hello"


def test_missing_idempotency_key_is_refused(agent, api_for, client_obj):
    body = _problem(_post(api_for(agent), client_obj, {"body": "Hello"}, key=None), 422)
    assert "Idempotency-Key" in body["detail"]
    assert Message.objects.count() == 0


@pytest.mark.parametrize("role", ["Viewer", None])
def test_send_without_permission_is_403(make_user, api_for, client_obj, role):
    body = _problem(_post(api_for(make_user(role)), client_obj, {"body": "Hello"}), 403)
    assert "Send a private message" in body["detail"]
    assert Message.objects.count() == 0


def test_missing_variables_are_422_and_named(agent, api_for, make_client):
    client = make_client(email="")
    response = _post(api_for(agent), client, {"body": "Hi {{nickname}}, mail {{email}}"})
    body = _problem(response, 422)
    assert body["missing_variables"] == ["nickname", "email"]
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "body"),
        ({"body": ""}, "body"),
        ({"body": None}, "body"),
        ({"body": 42}, None),
        ({"body": ["a"]}, "body"),
        ({"body": "x" * 5001}, "body"),
        ({"body": "   "}, "body"),
    ],
)
def test_bad_bodies_are_4xx_problems_and_store_nothing(agent, api_for, client_obj, payload, field):
    response = _post(api_for(agent), client_obj, payload)
    if payload == {"body": 42}:
        # DRF coerces a number to text: it is a valid (if odd) message.
        assert response.status_code == 201
        return
    body = _problem(response, 422)
    assert field in body["errors"]
    assert Message.objects.count() == 0


def test_malformed_json_is_400(agent, api_for, client_obj):
    response = api_for(agent).post(
        _url(client_obj), data="{oops", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
    )
    _problem(response, 400)


def test_wrong_content_type_is_415(agent, api_for, client_obj):
    response = api_for(agent).post(
        _url(client_obj), data="body=hi", content_type="text/plain", HTTP_IDEMPOTENCY_KEY="k"
    )
    _problem(response, 415)


def test_send_to_unknown_client_is_404(agent, api_for):
    response = api_for(agent).post(
        f"/api/v1/clients/{uuid.uuid4()}/messages",
        {"body": "hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    _problem(response, 404)


def test_list_is_newest_first_and_needs_view_permission(
    agent, viewer, make_user, api_for, client_obj
):
    api = api_for(agent)
    for n in range(3):
        _post(api, client_obj, {"body": f"Message {n}"}, key=f"k{n}")
    listed = api_for(viewer).get(_url(client_obj))
    assert listed.status_code == 200
    assert [m["body"] for m in listed.json()["results"]] == ["Message 2", "Message 1", "Message 0"]
    assert all(m["deliveries"] == [] for m in listed.json()["results"])
    _problem(api_for(make_user(None)).get(_url(client_obj)), 403)


def test_read_one_message(agent, api_for, client_obj):
    api = api_for(agent)
    created = _post(api, client_obj, {"body": "Hello"}).json()
    assert api.get(f"/api/v1/messages/{created['id']}").json() == created
    _problem(api.get(f"/api/v1/messages/{uuid.uuid4()}"), 404)
    _problem(api.get("/api/v1/messages/not-a-uuid"), 404)


@pytest.mark.django_db(transaction=True)
def test_concurrent_api_requests_with_one_key_make_one_message(agent, api_for, client_obj):
    threads = 6
    apis = [api_for(agent) for _ in range(threads)]
    responses, errors = race(
        threads, lambda n: _post(apis[n], client_obj, {"body": "Only once"}, key="burst")
    )
    assert errors == []
    statuses = [r.status_code for r in responses]
    bodies = [r.json() for r in responses]
    assert len(statuses) == threads
    assert set(statuses) <= {201, 409}
    assert all(s < 500 for s in statuses)
    assert len({b["id"] for b in bodies if "id" in b}) == 1
    assert Message.objects.count() == 1
