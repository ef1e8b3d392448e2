"""Broadcasts through the API and the worker's batches (run here): what each recipient gets, the
skips, dry runs, schedules in each client's zone, quiet hours, the cap, idempotency, cancel,
permissions and other users' broadcasts."""

import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from clientdesk.audit.models import ActivityEvent, AuditEntry
from clientdesk.clients.services import client_update
from clientdesk.core.models import LiveEvent
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Delivery
from clientdesk.messaging.models import Category, Message
from clientdesk.messaging.services.sending import message_send
from clientdesk.messaging.services.templates import template_create
from clientdesk.outreach.models import (
    Broadcast,
    BroadcastRecipient,
    OutreachSettings,
)
from clientdesk.outreach.selectors import outreach_settings_get
from clientdesk.outreach.services import broadcast_cancel, deliver_time
from tests.outreach.conftest import run_batches

pytestmark = pytest.mark.django_db


def post(api, data, key="k-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post("/api/v1/broadcasts", data, format="json", **headers)


def ids(clients):
    return [str(c.id) for c in clients]


def assert_counts_add_up(broadcast: Broadcast) -> None:
    broadcast.refresh_from_db()
    rows = BroadcastRecipient.objects.filter(broadcast=broadcast)
    by_status = {s: rows.filter(status=s).count() for s in ("pending", "sent", "skipped")}
    by_status["cancelled"] = rows.filter(status="cancelled").count()
    assert broadcast.recipients == rows.count()
    assert (broadcast.sent, broadcast.skipped, broadcast.cancelled, broadcast.pending) == (
        by_status["sent"],
        by_status["skipped"],
        by_status["cancelled"],
        by_status["pending"],
    )
    assert Message.objects.filter(broadcast_id=broadcast.id).count() == broadcast.sent


def test_each_recipient_gets_one_ordinary_message(manager, many_clients, api_for, endpoint):
    clients = many_clients(7)
    email_less = clients[0]
    api = api_for(manager)
    response = post(
        api,
        {
            "audience": {"client_ids": ids(clients)},
            "body": "Hello {{ firstName }}, the office closes on Friday.",
            "category": "service",
        },
    )
    assert response.status_code == 202, response.json()
    data = response.json()
    assert (data["status"], data["recipients"], data["pending"]) == ("scheduled", 7, 7)
    assert Message.objects.count() == 0  # the request writes none: the workers do
    broadcast = Broadcast.objects.get(pk=data["id"])
    assert run_batches(limit=3) == 3  # 3 + 3 + 1
    assert_counts_add_up(broadcast)
    assert (broadcast.status, broadcast.sent) == ("completed", 7)

    messages = Message.objects.filter(broadcast_id=broadcast.id)
    assert sorted(str(m.client_id) for m in messages) == sorted(ids(clients))
    for message in messages:
        assert message.sender == manager
        assert message.category == Category.SERVICE
        assert message.body == f"Hello {message.client.first_name}, the office closes on Friday."
        # The history a single send leaves: timeline, ledger, webhook, live event.
        assert ActivityEvent.objects.get(subject_id=message.id).data["broadcast_id"] == str(
            broadcast.id
        )
        entry = AuditEntry.objects.filter(object_id=str(message.id), action="message.sent")
        assert entry.get().data["broadcast_id"] == str(broadcast.id)
        hook = Delivery.objects.get(subject_id=message.id, channel="webhook")
        shape = hook.payload["data"]["message"]
        assert (shape["broadcast_id"], shape["category"]) == (str(broadcast.id), "service")
        assert LiveEvent.objects.filter(client_id=message.client_id, type="message.created")
    del email_less
    completed = Delivery.objects.get(payload__type="broadcast.completed")
    assert completed.payload["data"]["broadcast"]["sent"] == 7
    assert completed.payload["data"]["broadcast"]["pending"] == 0
    # One progress event per batch (and one at creation), about the broadcast.
    progress = LiveEvent.objects.filter(type="broadcast.progress", client_id=broadcast.id)
    assert progress.count() == 1 + 3
    assert progress.order_by("-id").first().data["status"] == "completed"
    assert AuditEntry.objects.get(action="broadcast.created").data["recipients"] == 7
    detail = api.get(f"/api/v1/broadcasts/{broadcast.id}").json()
    assert (detail["sent"], detail["pending"], detail["status"]) == (7, 0, "completed")
    listed = api.get(f"/api/v1/broadcasts/{broadcast.id}/recipients?status=sent&page_size=5")
    assert listed.status_code == 200
    assert len(listed.json()["results"]) == 5 and listed.json()["next"]
    assert all(r["message_id"] for r in listed.json()["results"])


def test_a_retried_create_with_the_same_key_is_one_broadcast(manager, many_clients, api_for):
    clients = many_clients(3)
    api = api_for(manager)
    data = {"audience": {"client_ids": ids(clients)}, "body": "Hi", "category": "service"}
    first = post(api, data, key="same")
    again = post(api, data, key="same")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    other = post(api, {**data, "body": "Something else"}, key="same")
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["errors"]
    assert Broadcast.objects.count() == 1
    assert BroadcastRecipient.objects.count() == 3
    assert post(api, data, key=None).status_code == 422  # the key is required
    assert post(api, data, key="with space").status_code == 422


def test_skips_have_reasons_and_service_messages_reach_opted_out_clients(
    manager, many_clients, make_client, api_for
):
    api = api_for(manager)
    ok = many_clients(2, attributes={"plan": "pro"})
    inactive = make_client(attributes={"plan": "pro"})
    client_update(actor=None, client_id=inactive.id, changes={"is_active": False})
    opted_out = make_client(attributes={"plan": "pro"}, outreach_opt_out=True, actor=manager)
    no_plan = make_client()
    later_inactive = make_client(attributes={"plan": "pro"})
    everyone = [*ok, inactive, opted_out, no_plan, later_inactive]
    body = "Your plan: {{ plan }}"

    outreach = post(
        api, {"audience": {"client_ids": ids(everyone)}, "body": body, "category": "outreach"}
    )
    assert outreach.status_code == 202, outreach.json()
    assert (outreach.json()["recipients"], outreach.json()["skipped"]) == (6, 3)
    client_update(
        actor=None, client_id=later_inactive.id, changes={"is_active": False}
    )  # skipped at its turn
    run_batches()
    broadcast = Broadcast.objects.get(pk=outreach.json()["id"])
    assert_counts_add_up(broadcast)
    reasons = dict(
        BroadcastRecipient.objects.filter(broadcast=broadcast).values_list("client_id", "reason")
    )
    assert reasons == {
        ok[0].id: "",
        ok[1].id: "",
        inactive.id: "inactive",
        opted_out.id: "opted_out",
        no_plan.id: "missing_variables",
        later_inactive.id: "inactive",
    }
    assert (broadcast.sent, broadcast.skipped) == (2, 4)
    skipped = api.get(f"/api/v1/broadcasts/{broadcast.id}/recipients?reason=missing_variables")
    assert [r["client_id"] for r in skipped.json()["results"]] == [str(no_plan.id)]

    service = post(
        api,
        {"audience": {"client_ids": ids([opted_out])}, "body": body, "category": "service"},
        key="k-2",
    )
    assert service.status_code == 202
    run_batches()
    assert Message.objects.filter(client=opted_out, category="service").count() == 1
    assert not Message.objects.filter(client=opted_out, category="outreach").exists()
    # Everyone skipped: nothing to send is a 422, and nothing is stored.
    none = post(
        api,
        {"audience": {"client_ids": ids([inactive])}, "body": "Hi", "category": "service"},
        key="k-3",
    )
    assert none.status_code == 422
    assert Broadcast.objects.count() == 2


def _row_counts():
    return {
        model.__name__: model.objects.count()
        for model in (Broadcast, BroadcastRecipient, Message, Delivery, AuditEntry, LiveEvent)
    }


def test_a_dry_run_previews_and_writes_nothing(manager, many_clients, make_client, api_for):
    api = api_for(manager)
    clients = many_clients(25, attributes={"plan": "plus"})
    lacking = make_client()
    before = _row_counts()
    response = post(
        api,
        {
            "audience": {"client_ids": ids([*clients, lacking])},
            "body": "{{ firstName }}: {{ plan }}",
            "category": "service",
            "dry_run": True,
        },
        key=None,
    )
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["recipients"] == 25
    assert data["skipped"] == {"missing_variables": 1}
    assert len(data["preview"]) == 20
    first = data["preview"][0]
    client = next(c for c in clients if str(c.id) == first["client_id"])
    assert first["body"] == f"{client.first_name}: plus"
    assert first["deliver_at"]
    assert _row_counts() == before


def test_send_at_local_is_read_in_each_clients_zone(manager, make_client, api_for):
    api = api_for(manager)
    settings = outreach_settings_get()
    settings.default_timezone = "Europe/Berlin"
    settings.save()
    tokyo = make_client(timezone="Asia/Tokyo")
    new_york = make_client(timezone="America/New_York")
    zoneless = make_client()
    local = (timezone.now() + timedelta(days=3)).replace(
        hour=9, minute=0, second=0, microsecond=0, tzinfo=None
    )
    response = post(
        api,
        {
            "audience": {"client_ids": ids([tokyo, new_york, zoneless])},
            "body": "Good morning",
            "category": "service",
            "send_at_local": local.isoformat(),
        },
    )
    assert response.status_code == 202, response.json()
    due = dict(BroadcastRecipient.objects.values_list("client_id", "due_at"))
    for client, zone in (
        (tokyo, "Asia/Tokyo"),
        (new_york, "America/New_York"),
        (zoneless, "Europe/Berlin"),
    ):
        assert due[client.id] == local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    assert run_batches() == 0  # not due yet: nothing written
    assert Message.objects.count() == 0
    assert response.json()["send_at_local"] == local.isoformat()


def test_send_at_holds_the_broadcast_until_then(manager, many_clients, api_for):
    api = api_for(manager)
    at = timezone.now() + timedelta(hours=2)
    response = post(
        api,
        {
            "audience": {"client_ids": ids(many_clients(2))},
            "body": "Later",
            "category": "service",
            "send_at": at.isoformat(),
        },
    )
    assert response.status_code == 202
    assert set(BroadcastRecipient.objects.values_list("due_at", flat=True)) == {at}
    assert run_batches() == 0
    BroadcastRecipient.objects.update(due_at=timezone.now())  # the time has come
    assert run_batches() == 1
    assert Message.objects.count() == 2


def test_quiet_hours_hold_the_notifications_not_the_message(
    manager, make_client, api_for, endpoint
):
    zone = ZoneInfo("Pacific/Auckland")
    now_there = timezone.now().astimezone(zone)
    # Quiet from an hour ago to two hours ahead, there.
    start = (now_there - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now_there + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    settings = OutreachSettings.objects.create(
        pk=1, quiet_hours_start=start, quiet_hours_end=end, default_timezone="UTC"
    )
    del settings
    sleeping = make_client(timezone="Pacific/Auckland")
    awake = make_client(timezone="Europe/London")  # 13 hours behind: outside the window
    response = post(
        api_for(manager),
        {"audience": {"client_ids": ids([sleeping, awake])}, "body": "Hi", "category": "service"},
    )
    assert response.status_code == 202
    run_batches()
    held = Message.objects.get(client=sleeping)  # written now, visible in the cabinet
    held_hook = Delivery.objects.get(subject_id=held.id)
    recipient = BroadcastRecipient.objects.get(client=sleeping)
    expected = datetime.combine(now_there.date(), end, tzinfo=zone)
    if expected <= now_there:  # the window spans midnight
        expected += timedelta(days=1)
    assert held_hook.next_attempt_at == recipient.deliver_at == expected.astimezone(UTC)
    assert held_hook.next_attempt_at > timezone.now() + timedelta(hours=1)
    free = Message.objects.get(client=awake)
    assert Delivery.objects.get(subject_id=free.id).next_attempt_at <= timezone.now()


@pytest.mark.parametrize(
    ("written", "start", "end", "expected"),
    [
        ("2026-12-07T22:30", "21:00", "08:00", "2026-12-08T08:00"),  # across midnight
        ("2026-12-07T06:00", "21:00", "08:00", "2026-12-07T08:00"),  # early morning
        ("2026-12-07T12:00", "21:00", "08:00", "2026-12-07T12:00"),  # daytime: at once
        ("2026-12-07T13:00", "12:00", "14:00", "2026-12-07T14:00"),  # a window within a day
        ("2026-12-07T14:00", "12:00", "14:00", "2026-12-07T14:00"),  # its end is outside
    ],
)
def test_deliver_time(written, start, end, expected):
    zone = ZoneInfo("Europe/Lisbon")
    at = datetime.fromisoformat(written).replace(tzinfo=zone)
    quiet = (time.fromisoformat(start), time.fromisoformat(end))
    assert deliver_time(at, zone, quiet) == datetime.fromisoformat(expected).replace(tzinfo=zone)


def test_the_weekly_cap_skips_clients_who_had_enough_outreach(
    manager, many_clients, api_for, agent
):
    OutreachSettings.objects.create(pk=1, max_outreach_per_week=1)
    busy, calm = many_clients(2)
    api = api_for(manager)
    first = post(
        api, {"audience": {"client_ids": ids([busy])}, "body": "One", "category": "outreach"}
    )
    assert first.status_code == 202
    run_batches()
    second = post(
        api,
        {"audience": {"client_ids": ids([busy, calm])}, "body": "Two", "category": "outreach"},
        key="k-2",
    )
    assert second.status_code == 202
    broadcast = Broadcast.objects.get(pk=second.json()["id"])
    assert BroadcastRecipient.objects.get(broadcast=broadcast, client=busy).reason == (
        "frequency_cap"
    )
    # Service messages are not outreach: not capped, and not counted.
    message_send(
        sender=agent, client_id=calm.id, body="Service", idempotency_key="s", meta=RequestMeta()
    )
    service = post(
        api,
        {"audience": {"client_ids": ids([busy])}, "body": "Three", "category": "service"},
        key="k-3",
    )
    assert service.status_code == 202
    assert service.json()["skipped"] == 0


def test_cancel_stops_what_is_not_written(manager, many_clients, api_for):
    api = api_for(manager)
    clients = many_clients(5)
    response = post(
        api, {"audience": {"client_ids": ids(clients)}, "body": "Hi", "category": "service"}
    )
    broadcast = Broadcast.objects.get(pk=response.json()["id"])
    from clientdesk.outreach.services import broadcasts_send_batch

    assert broadcasts_send_batch(limit=2) == 2
    cancelled = api.post(f"/api/v1/broadcasts/{broadcast.id}/cancel")
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["cancelled"]) == ("cancelled", 3)
    assert (cancelled.json()["sent"], cancelled.json()["pending"]) == (2, 0)
    assert run_batches() == 0
    assert Message.objects.filter(broadcast_id=broadcast.id).count() == 2
    assert_counts_add_up(broadcast)
    assert api.post(f"/api/v1/broadcasts/{broadcast.id}/cancel").status_code == 409
    assert AuditEntry.objects.get(action="broadcast.cancelled").data["cancelled"] == 3

    done = post(
        api,
        {"audience": {"client_ids": ids(clients)}, "body": "Hi", "category": "service"},
        key="k-2",
    )
    run_batches()
    assert api.post(f"/api/v1/broadcasts/{done.json()['id']}/cancel").status_code == 409


def test_who_may_broadcast_and_see_broadcasts(manager, make_user, many_clients, api_for, agent):
    clients = many_clients(2)
    data = {"audience": {"client_ids": ids(clients)}, "body": "Hi", "category": "service"}
    assert post(api_for(agent), data).status_code == 403
    assert post(api_for(agent), {**data, "dry_run": True}, key=None).status_code == 403
    assert post(api_for(make_user("Viewer")), data).status_code == 403
    mine = post(api_for(manager), data).json()
    other_manager = make_user("Manager")
    # Managers see every broadcast; others see only their own (none here).
    assert [
        b["id"] for b in api_for(other_manager).get("/api/v1/broadcasts").json()["results"]
    ] == [mine["id"]]
    agent_api = api_for(agent)
    assert agent_api.get("/api/v1/broadcasts").json()["results"] == []
    assert agent_api.get(f"/api/v1/broadcasts/{mine['id']}").status_code == 404
    assert agent_api.get(f"/api/v1/broadcasts/{mine['id']}/recipients").status_code == 404
    assert agent_api.post(f"/api/v1/broadcasts/{mine['id']}/cancel").status_code == 403
    assert api_for(manager).get(f"/api/v1/broadcasts/{uuid.uuid4()}").status_code == 404
    with pytest.raises(Exception, match="Send a broadcast"):
        broadcast_cancel(actor=agent, broadcast_id=mine["id"])
    # The settings are the administrators'.
    assert api_for(manager).get("/api/v1/settings/outreach").status_code == 403
    assert api_for(manager).put("/api/v1/settings/outreach", {}, format="json").status_code == 403


def test_outreach_settings(api_for, administrator):
    api = api_for(administrator)
    assert api.get("/api/v1/settings/outreach").json() == {
        "quiet_hours": None,
        "default_timezone": "UTC",
        "max_outreach_per_week": None,
    }
    new = {
        "quiet_hours": ["21:00", "08:00"],
        "default_timezone": "Europe/Berlin",
        "max_outreach_per_week": 2,
    }
    response = api.put("/api/v1/settings/outreach", new, format="json")
    assert response.status_code == 200 and response.json() == new
    assert api.get("/api/v1/settings/outreach").json() == new
    record = AuditEntry.objects.get(action="outreach.settings_updated")
    assert record.data["after"] == new
    for bad, field in [
        ({**new, "quiet_hours": ["25:00", "08:00"]}, "quiet_hours"),
        ({**new, "quiet_hours": ["08:00", "08:00"]}, "quiet_hours"),
        ({**new, "quiet_hours": "21:00-08:00"}, "quiet_hours"),
        ({**new, "default_timezone": "Mars/Olympus"}, "default_timezone"),
        ({**new, "default_timezone": {"a": 1}}, "default_timezone"),
        ({**new, "max_outreach_per_week": 0}, "max_outreach_per_week"),
        ({**new, "max_outreach_per_week": True}, "max_outreach_per_week"),
        ({**new, "max_outreach_per_week": "2"}, "max_outreach_per_week"),
        ({"quiet_hours": None}, "default_timezone"),
        ({**new, "extra": 1}, "extra"),
    ]:
        response = api.put("/api/v1/settings/outreach", bad, format="json")
        assert response.status_code == 422, bad
        assert field in response.json()["errors"], (bad, response.json())
    assert api.get("/api/v1/settings/outreach").json() == new


def _hostile(client_id: str) -> list[tuple[dict, str]]:
    base = {"audience": {"client_ids": [client_id]}, "body": "Hi", "category": "service"}
    soon = (timezone.now() + timedelta(days=1)).isoformat()
    return [
        ({**base, "audience": {}}, "audience"),
        ({**base, "audience": []}, "audience"),
        ({**base, "audience": {"search": ""}}, "audience.search"),
        ({**base, "audience": {"search": "   "}}, "audience.search"),
        ({**base, "audience": {"everyone": True}}, "audience.everyone"),
        ({**base, "audience": {"attributes": {"plan": {"$ne": 1}}}}, "audience.attributes.plan"),
        ({**base, "audience": {"attributes": {"plan": ["a"]}}}, "audience.attributes.plan"),
        ({**base, "audience": {"attributes": {"a b": "x"}}}, "audience.attributes"),
        ({**base, "audience": {"attributes": "plan=pro"}}, "audience.attributes"),
        ({**base, "audience": {"language": "xx-nope"}}, "audience.language"),
        ({**base, "audience": {"client_ids": ["not-a-uuid"]}}, "audience.client_ids"),
        ({**base, "audience": {"client_ids": []}}, "audience.client_ids"),
        (
            {**base, "audience": {"client_ids": [str(uuid.uuid4()) for _ in range(50_000)]}},
            "audience.client_ids",
        ),
        ({**base, "audience": {"external_ids": ["NOPE-1"]}}, "audience.external_ids"),
        ({**base, "audience": {"client_ids": [client_id], "search": "zzzqqq"}}, "audience"),
        ({**base, "category": "marketing"}, "category"),
        ({**base, "category": None}, "category"),
        ({**base, "body": None}, "body"),
        ({**base, "template_id": str(uuid.uuid4())}, "body"),
        ({**{k: v for k, v in base.items() if k != "body"}, "template_id": "x"}, "template_id"),
        (
            {**{k: v for k, v in base.items() if k != "body"}, "template_id": str(uuid.uuid4())},
            "template_id",
        ),
        ({**base, "body": "   "}, "body"),
        ({**base, "body": "x" * 200_000}, "body"),
        ({**base, "body": "{{ sender.password }}"}, "body"),
        (
            {
                **base,
                "body": "{% for i in (1..1000) %}{% for j in (1..1000) %}x{% endfor %}{% endfor %}",
            },
            "body",
        ),
        ({**base, "body": "{{ 'x' | append: 'y' "}, "body"),
        ({**base, "send_at": soon, "send_at_local": "2030-01-01T09:00:00"}, "send_at_local"),
        ({**base, "send_at": "2020-01-01T00:00:00Z"}, "send_at"),
        ({**base, "send_at": "2030-01-01T09:00:00"}, "send_at"),  # no offset: not an instant
        ({**base, "send_at": "9999-99-99"}, "send_at"),
        ({**base, "send_at": (timezone.now() + timedelta(days=400)).isoformat()}, "send_at"),
        ({**base, "send_at_local": "2020-01-01T09:00:00"}, "send_at_local"),
        ({**base, "send_at_local": "2030-01-01T09:00:00+01:00"}, "send_at_local"),
        ({**base, "send_at_local": 12}, "send_at_local"),
        ({**base, "expects_reply": "yes"}, "expects_reply"),
        ({**base, "dry_run": "yes"}, "dry_run"),
        ({**base, "colour": "red"}, "colour"),
    ]


def test_hostile_requests_get_a_422_naming_the_field(manager, client_obj, api_for):
    api = api_for(manager)
    for n, (data, field) in enumerate(_hostile(str(client_obj.id))):
        response = post(api, data, key=f"h-{n}")
        assert response.status_code == 422, (field, response.status_code)
        assert response["Content-Type"].startswith("application/problem+json")
        assert field in response.json().get("errors", {}), (field, response.json())
    assert post(api, ["not", "an", "object"]).status_code in (400, 422)
    assert Broadcast.objects.count() == 0
    assert Message.objects.count() == 0


def test_the_audience_keys_are_anded(manager, make_client, api_for):
    api = api_for(manager)
    template = template_create(
        author=manager, name="Plans", body="Hello {{ firstName }} ({{ plan }})", language="en"
    )
    de_pro = make_client(first_name="Greta", language="de", attributes={"plan": "pro"})
    de_basic = make_client(first_name="Greta", language="de", attributes={"plan": "basic"})
    en_pro = make_client(first_name="Greta", language="en", attributes={"plan": "pro"})
    other = make_client(first_name="Hans", language="de", attributes={"plan": "pro"})
    response = post(
        api,
        {
            "audience": {"search": "greta", "language": "de", "attributes": {"plan": "pro"}},
            "template_id": str(template.template_id),
            "category": "service",
            "dry_run": True,
        },
        key=None,
    )
    assert response.status_code == 200, response.json()
    assert [p["client_id"] for p in response.json()["preview"]] == [str(de_pro.id)]
    assert response.json()["preview"][0]["body"] == "Hello Greta (pro)"
    del de_basic, other
    by_external = post(
        api,
        {
            "audience": {"external_ids": [de_pro.external_id, en_pro.external_id]},
            "template_id": str(template.template_id),
            "category": "service",
        },
    )
    assert by_external.status_code == 202
    run_batches()
    sent = Message.objects.filter(broadcast_id=by_external.json()["id"])
    assert {m.client_id for m in sent} == {de_pro.id, en_pro.id}
    assert {m.template_id for m in sent} == {template.template_id}
