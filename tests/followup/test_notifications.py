"""Reply notifications: who hears of a client's reply, the read state per user and its API, the
events on each user's own stream, and the count every page renders."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from clientdesk.core.live.log import Event
from clientdesk.core.models import LiveEvent
from clientdesk.core.request_meta import RequestMeta
from clientdesk.followup.models import ReplyNotification
from clientdesk.followup.notifications import EXCERPT_CHARS, notifications_mark_read
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.sending import message_send
from clientdesk.messaging.streams import staff_render
from clientdesk.portal.services import portal_reply_create, portal_session_issue
from tests.followup.helpers import client_writes

pytestmark = pytest.mark.django_db


def send(sender, client, body="Please send your payslip"):
    result = message_send(
        sender=sender,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    return Message.objects.get(pk=result.message_id)


def reply(client, body="Here it is", in_reply_to=None):
    result = portal_reply_create(
        client=client,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        in_reply_to=in_reply_to.pk if in_reply_to else None,
        meta=RequestMeta(),
    )
    return Message.objects.get(pk=result.message.pk)


def notified(message):
    return list(ReplyNotification.objects.filter(message=message).values_list("user_id", flat=True))


@pytest.fixture
def sam(make_user):
    return make_user("Agent", first_name="Sam", last_name="Sender")


@pytest.fixture
def olga(make_user):
    return make_user("Agent", first_name="Olga", last_name="Other")


# --- who hears of a reply ---------------------------------------------------------------------


def test_a_reply_notifies_the_sender_of_the_message_it_answers_and_nobody_else(
    sam, olga, client_obj
):
    mine = send(sam, client_obj)
    send(olga, client_obj, "And your bank statement?")  # later, by someone else
    answer = reply(client_obj, in_reply_to=mine)
    assert notified(answer) == [sam.pk]
    event = LiveEvent.objects.filter(type="notification.created").get()
    assert event.data["user_id"] == str(sam.pk)
    assert event.data["message_id"] == str(answer.pk)
    assert event.data["client_name"] == client_obj.full_name
    # Recorded in the reply's transaction, after its own message.created.
    created = LiveEvent.objects.filter(type="message.created").latest("id")
    assert created.data["id"] == str(answer.pk) and created.id < event.id


def test_a_reply_that_names_no_message_goes_to_the_latest_sender(sam, olga, client_obj):
    send(sam, client_obj)
    send(olga, client_obj, "Any news?")
    assert notified(reply(client_obj)) == [olga.pk]
    # The client's own earlier message named as the one answered: still the latest sender.
    own = client_writes(client_obj, "Hello?")
    assert notified(reply(client_obj, in_reply_to=own)) == [olga.pk]


def test_nobody_hears_when_no_one_wrote_or_the_sender_left(sam, make_client):
    quiet = make_client()
    assert notified(reply(quiet)) == []
    other = make_client()
    mine = send(sam, other)
    sam.is_active = False
    sam.save(update_fields=["is_active"])
    assert notified(reply(other, in_reply_to=mine)) == []
    assert notified(reply(other)) == []
    assert not LiveEvent.objects.filter(type="notification.created").exists()


def test_hostile_reply_text_is_kept_as_text_and_cut_for_the_toast(sam, client_obj):
    mine = send(sam, client_obj)
    hostile = '<img src=x onerror="alert(1)">\u202e' + "é" * 4000 + "\n\n<script>x</script>"
    answer = reply(client_obj, hostile, in_reply_to=mine)
    event = LiveEvent.objects.filter(type="notification.created").get()
    assert event.data["excerpt"].startswith('<img src=x onerror="alert(1)">')
    assert len(event.data["excerpt"]) == EXCERPT_CHARS and event.data["excerpt"].endswith("…")
    assert Message.objects.get(pk=answer.pk).body == hostile  # the message itself is whole


def test_a_broadcast_like_write_of_many_replies_notifies_each_in_a_few_statements(
    sam, olga, make_client
):
    from django.test.utils import CaptureQueriesContext

    from clientdesk.messaging.models import Direction
    from clientdesk.messaging.services.writing import MessageWrite, messages_write

    clients = [make_client() for _ in range(30)]
    for n, client in enumerate(clients):
        send(sam if n % 2 else olga, client)
    with CaptureQueriesContext(connection) as queries:
        messages_write(
            writes=[
                MessageWrite(client=c, direction=Direction.IN, body="Yes", meta=RequestMeta())
                for c in clients
            ]
        )
    ours = [q["sql"] for q in queries.captured_queries if "followup_replynotification" in q["sql"]]
    assert ReplyNotification.objects.filter(user=sam).count() == 15
    assert ReplyNotification.objects.filter(user=olga).count() == 15
    if connection.vendor == "postgresql":  # SQLite inserts in chunks of its 999 variables
        assert len(ours) == 1, ours


# --- the stream -------------------------------------------------------------------------------


def test_each_users_stream_carries_only_their_own_notifications(sam, olga, client_obj):
    answer = reply(client_obj, in_reply_to=send(sam, client_obj))
    row = LiveEvent.objects.filter(type="notification.created").get()
    event = Event(row.id, row.client_id, row.type, row.data)
    assert f'"message_id":"{answer.pk}"' in staff_render(sam.pk, [False])(event)
    assert staff_render(olga.pk, [True])(event) == ""  # even a broadcaster sees nobody else's
    created = LiveEvent.objects.filter(type="message.created").latest("id")
    shown = Event(created.id, created.client_id, created.type, created.data)
    assert staff_render(olga.pk, [False])(shown) != ""  # the reply itself is everyone's


# --- the API ----------------------------------------------------------------------------------


@pytest.fixture
def two_unread(sam, olga, make_client):
    first, second = make_client(first_name="Ada"), make_client(first_name="Bea")
    replies = [
        reply(first, in_reply_to=send(sam, first)),
        reply(second, in_reply_to=send(sam, second)),
    ]
    theirs = reply(first, in_reply_to=send(olga, first))
    return first, second, replies, theirs


def test_the_list_is_the_users_own_newest_first_with_the_unread_count(
    api_for, sam, olga, two_unread
):
    _, second, replies, theirs = two_unread
    body = api_for(sam).get("/api/v1/notifications").json()
    assert body["unread_count"] == 2
    assert [n["message_id"] for n in body["results"]] == [str(replies[1].pk), str(replies[0].pk)]
    assert {n["user_id"] for n in body["results"]} == {str(sam.pk)}
    assert body["results"][0]["client_name"] == second.full_name
    other = api_for(olga).get("/api/v1/notifications").json()
    assert [n["message_id"] for n in other["results"]] == [str(theirs.pk)]
    page = api_for(sam).get("/api/v1/notifications?limit=1").json()
    assert len(page["results"]) == 1 and page["next"]
    rest = api_for(sam).get(page["next"]).json()
    assert [n["message_id"] for n in rest["results"]] == [str(replies[0].pk)]
    assert rest["next"] is None


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "unread=maybe", "cursor=%7B%7B%7B", "other=1"]
)
def test_bad_list_queries_are_problems(api_for, sam, query):
    response = api_for(sam).get(f"/api/v1/notifications?{query}")
    assert response.status_code == 422
    assert response["Content-Type"].startswith("application/problem+json")


def test_marking_by_ids_refuses_another_users_notification_and_marks_nothing(
    api_for, sam, olga, two_unread
):
    own = list(ReplyNotification.objects.filter(user=sam).values_list("pk", flat=True))
    foreign = ReplyNotification.objects.get(user=olga).pk
    api = api_for(sam)
    for ids in ([str(foreign)], [str(own[0]), str(foreign)], [str(uuid.uuid4())]):
        response = api.post("/api/v1/notifications/read", {"ids": ids}, format="json")
        assert response.status_code == 404, response.content
        assert response["Content-Type"].startswith("application/problem+json")
        assert str(own[0]) not in response.json()["detail"]
    assert ReplyNotification.objects.filter(read_at__isnull=False).count() == 0
    response = api.post("/api/v1/notifications/read", {"ids": [str(own[0])]}, format="json")
    assert response.json() == {"marked": 1, "unread_count": 1}
    assert ReplyNotification.objects.get(pk=foreign).read_at is None


def test_marking_a_conversation_or_up_to_an_instant(api_for, sam, two_unread):
    first, _, replies, _ = two_unread
    api = api_for(sam)
    response = api.post("/api/v1/notifications/read", {"client_id": str(first.pk)}, format="json")
    assert response.json() == {"marked": 1, "unread_count": 1}
    read_at = ReplyNotification.objects.get(message=replies[0]).read_at
    again = api.post("/api/v1/notifications/read", {"client_id": str(first.pk)}, format="json")
    assert again.json() == {"marked": 0, "unread_count": 1}
    assert ReplyNotification.objects.get(message=replies[0]).read_at == read_at  # kept
    before = (replies[1].created_at - timedelta(seconds=1)).isoformat()
    none = api.post("/api/v1/notifications/read", {"until": before}, format="json")
    assert none.json() == {"marked": 0, "unread_count": 1}
    until = timezone.now().isoformat()
    assert api.post("/api/v1/notifications/read", {"until": until}, format="json").json() == {
        "marked": 1,
        "unread_count": 0,
    }
    assert api.get("/api/v1/notifications?unread=true").json()["results"] == []
    assert len(api.get("/api/v1/notifications?unread=false").json()["results"]) == 2


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ids": [], "client_id": None},
        {"ids": ["not-a-uuid"]},
        {"ids": [str(uuid.UUID(int=n)) for n in range(101)]},
        {"client_id": "3f0c2b1a-9d8e-4f7a-b6c5-d4e3f2a1b0c9", "until": "2026-01-01T00:00:00Z"},
        {"until": "0000-01-01T00:00:00Z"},
        {"until": "yesterday"},
        {"client_id": "\u0000"},
        [1, 2],
        {"ids": {"nested": {"deeper": []}}},
    ],
    # The same name in every process that collects it (pytest-xdist): no random value in a name.
    ids=lambda body: str(body)[:80],
)
def test_bad_bodies_are_problems_and_mark_nothing(api_for, sam, two_unread, body):
    response = api_for(sam).post("/api/v1/notifications/read", body, format="json")
    assert response.status_code in (400, 422), response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert ReplyNotification.objects.filter(read_at__isnull=False).count() == 0


def test_a_read_is_announced_to_the_users_other_tabs_once(api_for, sam, two_unread):
    first, *_ = two_unread
    api = api_for(sam)
    api.post("/api/v1/notifications/read", {"client_id": str(first.pk)}, format="json")
    api.post("/api/v1/notifications/read", {"client_id": str(first.pk)}, format="json")
    (event,) = LiveEvent.objects.filter(type="notification.read")
    assert event.data["user_id"] == str(sam.pk) and event.data["marked"] == 1
    assert event.client_id == sam.pk


def test_a_viewer_without_messages_has_no_notifications(api_for, make_user):
    nobody = make_user(None)
    assert api_for(nobody).get("/api/v1/notifications").status_code == 403
    response = api_for(nobody).post(
        "/api/v1/notifications/read", {"until": timezone.now().isoformat()}, format="json"
    )
    assert response.status_code == 403


def test_a_portal_token_is_refused(make_user, client_obj):
    issuer = make_user("Integration")
    token = portal_session_issue(issuer=issuer, token=None, client_id=client_obj.id)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token.representation()['token']}")
    assert api.get("/api/v1/notifications").status_code == 401


# --- the page ---------------------------------------------------------------------------------


def test_every_page_renders_the_count_in_the_title_and_on_messages(client, sam, olga, two_unread):
    client.force_login(sam)
    html = client.get("/clients/").content.decode()
    assert "<title>(2) Clients · Clientdesk</title>" in html
    assert 'id="unread-replies" data-count="2"' in html
    assert 'id="desktop-notifications"' in html and "followup/notifications.js" in html
    notifications_mark_read(user=sam, until=timezone.now())
    html = client.get("/messages/").content.decode()
    assert "<title>Messages · Clientdesk</title>" in html
    assert 'data-count="0" hidden' in html
    client.force_login(olga)
    assert "<title>(1) Clients · Clientdesk</title>" in client.get("/clients/").content.decode()


def test_a_user_who_may_not_read_messages_gets_no_badge(client, make_user):
    client.force_login(make_user(None))
    html = client.get("/accounts/profile/").content.decode()
    assert "unread-replies" not in html and "notifications.js" not in html


# --- concurrency ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_racing_marks_of_one_conversation_mark_each_once(sam, make_client):
    client = make_client()
    for _ in range(3):
        reply(client, in_reply_to=send(sam, client))
    results, errors = [], []
    start = threading.Barrier(4)

    def mark():
        try:
            start.wait(timeout=20)
            results.append(notifications_mark_read(user=sam, client_id=client.pk).marked)
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=mark) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sum(results) == 3
    assert LiveEvent.objects.filter(type="notification.read").count() == len(
        [r for r in results if r]
    )
