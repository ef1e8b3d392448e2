"""GET /api/v1/messages filters with data on both sides of each boundary, cursor paging, and the
follow-up settings API."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from clientdesk.core.request_meta import RequestMeta
from clientdesk.followup.models import FollowUpPolicy
from clientdesk.followup.services import followup_overdue_run
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.sending import message_send
from tests.followup.helpers import client_writes

pytestmark = pytest.mark.django_db


def send(agent, client, body="Hello", **kwargs):
    result = message_send(
        sender=agent,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        **kwargs,
    )
    return Message.objects.get(pk=result.message_id)


def ids(response):
    assert response.status_code == 200, response.content
    return [m["id"] for m in response.json()["results"]]


@pytest.fixture
def world(agent, make_client, make_user):
    """One message on each side of every filter."""
    anna, ben, cleo = make_client(), make_client(), make_client()
    other = make_user("Manager")
    soon = timezone.now() + timedelta(seconds=30)
    plain = send(agent, anna, "No reply expected")
    waiting = send(agent, ben, "Passport, please", expects_reply=True)
    late = send(other, cleo, "Utility bill, please", expects_reply=True, reply_due_at=soon)
    answered = send(agent, anna, "Question", expects_reply=True)
    reply = client_writes(anna, "Answer")  # answers `answered`, opens our response clock
    followup_overdue_run(now=soon + timedelta(seconds=1))
    for m in (plain, waiting, late, answered, reply):
        m.refresh_from_db()
    return locals()


def test_each_filter_splits_the_messages(world, api_for, viewer):
    api = api_for(viewer)
    w = world
    every = ids(api.get("/api/v1/messages"))
    assert every == [
        str(m.id) for m in (w["reply"], w["answered"], w["late"], w["waiting"], w["plain"])
    ]

    assert ids(api.get("/api/v1/messages?direction=in")) == [str(w["reply"].id)]
    assert str(w["reply"].id) not in ids(api.get("/api/v1/messages?direction=out"))
    assert ids(api.get("/api/v1/messages?awaiting_reply=true")) == [
        str(w["late"].id),
        str(w["waiting"].id),
    ]
    assert set(ids(api.get("/api/v1/messages?awaiting_reply=false"))) == {
        str(w[k].id) for k in ("plain", "answered", "reply")
    }
    assert ids(api.get("/api/v1/messages?needs_response=true")) == [str(w["reply"].id)]
    assert ids(api.get("/api/v1/messages?overdue=true")) == [str(w["late"].id)]
    assert ids(api.get(f"/api/v1/messages?client={w['anna'].id}")) == [
        str(w["reply"].id),
        str(w["answered"].id),
        str(w["plain"].id),
    ]
    assert ids(api.get(f"/api/v1/messages?sender={w['other'].id}")) == [str(w["late"].id)]

    body = {m["id"]: m for m in api.get("/api/v1/messages").json()["results"]}
    assert body[str(w["late"].id)]["reply_state"] == "overdue"
    assert body[str(w["waiting"].id)]["reply_state"] == "awaiting"
    assert body[str(w["answered"].id)]["reply_state"] == "answered"
    assert body[str(w["answered"].id)]["answered_at"] is not None
    assert body[str(w["plain"].id)]["reply_state"] == "none"
    assert body[str(w["reply"].id)]["reply_due_at"] is not None


def test_since_and_until_are_half_open(world, api_for, viewer):
    api = api_for(viewer)
    waiting = world["waiting"]
    at = waiting.created_at.isoformat().replace("+00:00", "Z")
    since = ids(api.get("/api/v1/messages", {"since": at}))
    until = ids(api.get("/api/v1/messages", {"until": at}))
    assert str(waiting.id) in since and str(waiting.id) not in until
    assert set(since) | set(until) == set(ids(api.get("/api/v1/messages")))
    assert not set(since) & set(until)


def test_cursor_pages_cover_everything_once(agent, make_client, api_for, viewer):
    client = make_client()
    sent = [send(agent, client, f"m{i}") for i in range(7)]
    # Same timestamp for several rows: the id breaks the tie.
    Message.objects.filter(pk__in=[m.pk for m in sent[2:5]]).update(created_at=sent[2].created_at)
    api = api_for(viewer)
    seen, url = [], "/api/v1/messages?limit=2"
    while url:
        body = api.get(url).json()
        seen += [m["id"] for m in body["results"]]
        url = body["next"]
    assert sorted(seen) == sorted(str(m.id) for m in sent)
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "query",
    [
        "direction=sideways",
        "awaiting_reply=maybe",
        "client=not-a-uuid",
        "since=yesterday",
        "limit=0",
        "limit=101",
        "cursor=%00%00",
        "cursor=bm90IGpzb24",
        "cursor=WyJ4IiwieSJd",  # ["x","y"]
    ],
)
def test_bad_filters_are_a_problem_naming_the_field(query, api_for, viewer):
    response = api_for(viewer).get(f"/api/v1/messages?{query}")
    assert response.status_code in (400, 422)
    assert response["Content-Type"].startswith("application/problem+json")
    field = query.split("=")[0]
    assert field in response.json()["errors"]


def test_list_needs_view_permission(api_for, make_user):
    assert api_for(make_user(None)).get("/api/v1/messages").status_code == 403


def test_send_with_expects_reply_over_the_api(agent, client_obj, api_for):
    api = api_for(agent)
    response = api.post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "Your ID, please", "expects_reply": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert response.status_code == 201, response.content
    assert response.json()["reply_state"] == "awaiting"
    assert response.json()["reply_due_at"]
    # The same key with expects_reply changed is another request.
    again = api.post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "Your ID, please"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert again.status_code == 422
    past = api.post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "x", "expects_reply": True, "reply_due_at": "2001-01-01T00:00:00Z"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k2",
    )
    assert past.status_code == 422 and "reply_due_at" in past.json()["errors"]


GOOD_POLICY = {
    "reply_window_hours": 8,
    "response_window_hours": 2.5,
    "timezone": "Europe/Berlin",
    "business_hours": {
        "mon": ["09:00", "17:00"],
        "tue": ["09:00", "17:00"],
        "wed": ["09:00", "17:00"],
        "thu": ["09:00", "17:00"],
        "fri": ["09:00", "13:00"],
        "sat": None,
        "sun": None,
    },
    "holidays": "DE",
}


def test_administrators_read_and_replace_the_policy(make_user, api_for):
    api = api_for(make_user("Administrator"))
    assert api.get("/api/v1/settings/follow-up").json()["timezone"] == "UTC"
    response = api.put("/api/v1/settings/follow-up", GOOD_POLICY, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["holidays"] == "DE" and body["business_hours"]["fri"] == ["09:00", "13:00"]
    assert body["preview"]["text"].startswith("A message sent now is due ")
    assert body["preview"]["text"].endswith("Europe/Berlin.")
    policy = FollowUpPolicy.objects.get()
    assert (policy.reply_window_hours, policy.timezone) == (8.0, "Europe/Berlin")


@pytest.mark.parametrize("role", ["Manager", "Agent", "Viewer", None])
def test_only_administrators_touch_the_policy(role, make_user, api_for):
    api = api_for(make_user(role))
    assert api.get("/api/v1/settings/follow-up").status_code == 403
    assert api.put("/api/v1/settings/follow-up", GOOD_POLICY, format="json").status_code == 403
    assert not FollowUpPolicy.objects.filter(timezone="Europe/Berlin").exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": "Europe/Berlin\x00"}, "timezone"),
        ({"timezone": ["Europe/Berlin"]}, "timezone"),
        ({"reply_window_hours": -1}, "reply_window_hours"),
        ({"reply_window_hours": "8"}, "reply_window_hours"),
        ({"reply_window_hours": True}, "reply_window_hours"),
        ({"response_window_hours": 1e9}, "response_window_hours"),
        ({"holidays": "XX"}, "holidays"),
        ({"holidays": 49}, "holidays"),
        ({"business_hours": {"mon": ["17:00", "09:00"]}}, "business_hours"),
        ({"business_hours": {d: None for d in GOOD_POLICY["business_hours"]}}, "business_hours"),
        ({"business_hours": [["09:00", "17:00"]]}, "business_hours"),
        ({"business_hours": {"mon": ["09:00", "\ud800"]}}, "business_hours"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(change, field, make_user, api_for):
    api = api_for(make_user("Administrator"))
    # json.dumps escapes lone surrogates, as a hostile client would send them.
    body = json.dumps({**GOOD_POLICY, **change})
    response = api.put("/api/v1/settings/follow-up", body, content_type="application/json")
    assert response.status_code == 422, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    # Text the parser refuses is named by its path inside the field (business_hours.mon[1]).
    assert any(name.split(".")[0] == field for name in response.json()["errors"])
    assert not FollowUpPolicy.objects.filter(timezone="Europe/Berlin").exists()
