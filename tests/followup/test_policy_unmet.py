# ruff: noqa: F811
"""A follow-up policy that can never be met: refused whole when saved (422 naming the field,
nothing written), and, when one is stored anyway, sends and replies keep working without a
clock, the problem is logged and administrators see it."""

import json
import logging
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from clientdesk.audit.models import AuditEntry, AuditRecord
from clientdesk.followup.models import FollowUpDue, FollowUpPolicy
from clientdesk.followup.selectors import policy_get
from clientdesk.followup.services import followup_overdue_run
from clientdesk.messaging.models import Direction, Message, ReplyState
from tests.followup.test_api import GOOD_POLICY

# The portal's fixtures (a session minted through the real API), used here as arguments.
from tests.portal.conftest import integration, integration_api, portal_for, reply  # noqa: F401

pytestmark = pytest.mark.django_db

POLICY_FIELDS = ("reply_window_hours", "response_window_hours", "timezone", "business_hours")
EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def stored():
    policy = FollowUpPolicy.objects.get_or_create(pk=1)[0]
    return {f: getattr(policy, f) for f in (*POLICY_FIELDS, "holidays")}


def ledger_size():
    return AuditEntry.objects.count() + AuditRecord.objects.count()


def put(api, body):
    return api.put(
        "/api/v1/settings/follow-up",
        json.dumps(body, allow_nan=True),
        content_type="application/json",
    )


@pytest.fixture
def admin(make_user):
    return make_user("Administrator")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # The report: an hour on Sundays holds 52 business hours a year, not 300.
        ({"business_hours": {"sun": ["10:00", "11:00"]}, "response_window_hours": 300}, "r"),
        ({"business_hours": {"sun": ["10:00", "11:00"]}, "reply_window_hours": 60}, "reply"),
        ({"reply_window_hours": 2000, "response_window_hours": 2000}, "reply_window_hours"),
        ({"response_window_hours": 1e9}, "response_window_hours"),
        ({"response_window_hours": 10**400}, "response_window_hours"),
        ({"reply_window_hours": -0.5}, "reply_window_hours"),
        ({"reply_window_hours": float("nan")}, "reply_window_hours"),
        ({"response_window_hours": float("inf")}, "response_window_hours"),
        ({"response_window_hours": -float("inf")}, "response_window_hours"),
        ({"reply_window_hours": None}, "reply_window_hours"),
        ({"business_hours": {"mon": ["09:00", "09:00"]}}, "business_hours"),
        ({"business_hours": {"mon": ["17:00", "09:00"]}}, "business_hours"),
        ({"business_hours": {"mon": ["09:00", "24:00"]}}, "business_hours"),
        ({"business_hours": {"mon": ["25:61", "26:00"]}}, "business_hours"),
        ({"business_hours": {"mon": ["9:00", "17:00"]}}, "business_hours"),
        ({"business_hours": {"mon": ["09:00", "17:00", "18:00"]}}, "business_hours"),
        ({"business_hours": {"mon": []}}, "business_hours"),
        ({"business_hours": {"mon": "09:00-17:00"}}, "business_hours"),
        ({"business_hours": {"monday": ["09:00", "17:00"]}}, "business_hours"),
        ({"business_hours": {}}, "business_hours"),
        ({"business_hours": None}, "business_hours"),
        ({"business_hours": "always"}, "business_hours"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": "Factory"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": "europe/berlin"}, "timezone"),
        ({"timezone": 1}, "timezone"),
        ({"holidays": "ZZ"}, "holidays"),
        ({"holidays": ["DE"]}, "holidays"),
    ],
)
def test_a_policy_that_cannot_be_met_is_refused_and_nothing_is_saved(change, field, admin, api_for):
    field = {"r": "response_window_hours", "reply": "reply_window_hours"}.get(field, field)
    api = api_for(admin)
    before, ledger = stored(), ledger_size()
    response = put(api, {**GOOD_POLICY, **change})
    assert response.status_code == 422, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert any(name.split(".")[0] == field for name in errors), errors
    assert stored() == before
    assert ledger_size() == ledger


def test_the_refusal_says_what_a_year_of_the_hours_holds(admin, api_for):
    response = put(
        api_for(admin),
        {
            **GOOD_POLICY,
            "business_hours": {"sun": ["10:00", "11:00"]},
            "response_window_hours": 300,
            "holidays": None,
        },
    )
    message = response.json()["errors"]["response_window_hours"][0]
    assert "300 business hours do not fit in a year" in message
    assert "holds only 52" in message or "holds only 53" in message


def test_alias_and_alpha3_codes_are_kept_as_the_alpha2_code(admin, api_for):
    api = api_for(admin)
    assert put(api, {**GOOD_POLICY, "holidays": "deu"}).json()["holidays"] == "DE"
    assert put(api, {**GOOD_POLICY, "holidays": "UK"}).json()["holidays"] == "GB"
    assert put(api, {**GOOD_POLICY, "holidays": None}).json()["holidays"] is None


def test_hours_in_a_dst_gap_and_zero_windows_are_computed(admin, api_for, agent, client_obj):
    """Opening inside the spring-forward gap, every window 0, a fractional window: saved, and
    a send gets a due time."""
    api = api_for(admin)
    body = {
        **GOOD_POLICY,
        "timezone": "America/Santiago",  # clocks jump at midnight: 00:00 is missing that day
        "business_hours": {d: ["00:00", "00:30"] for d in EVERY_DAY},
        "reply_window_hours": 0,
        "response_window_hours": 0.01,
        "holidays": "CL",
    }
    assert put(api, body).status_code == 200
    response = api_for(agent).post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "Hello", "expects_reply": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY="dst",
    )
    assert response.status_code == 201, response.content
    assert response.json()["reply_state"] == "awaiting"
    assert response.json()["reply_due_at"]


BAD_STORED = [
    {"business_hours": {"sun": ["10:00", "11:00"]}, "response_window_hours": 300.0},
    {"business_hours": {"sun": ["10:00", "11:00"]}, "reply_window_hours": 300.0},
    {"timezone": "Mars/Olympus"},
    {"business_hours": "always"},
    {"business_hours": ["09:00", "17:00"]},
    {"business_hours": {"mon": ["25:61", "26:00"]}},
    {"business_hours": {"mon": {"open": "09:00"}}},
    {"business_hours": {}},
    {"holidays": "XX"},
    {"reply_window_hours": -5.0, "response_window_hours": -5.0},
    {"reply_window_hours": 1e12, "response_window_hours": 1e12},
]


@pytest.fixture(params=BAD_STORED, ids=lambda change: ",".join(change))
def bad_policy(request):
    """A policy written straight into the table, around the validation (an old release, a
    hand edit, a restore)."""
    policy_get()
    FollowUpPolicy.objects.filter(pk=1).update(**request.param)
    return request.param


def test_sends_and_replies_are_kept_without_a_clock_under_a_stored_bad_policy(
    bad_policy, agent, client_obj, api_for, portal_for, caplog
):
    staff = api_for(agent)
    # A clock started before (explicit due time) is left alone and still turns overdue.
    earlier = staff.post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {
            "body": "Earlier",
            "expects_reply": True,
            "reply_due_at": (timezone.now() + timedelta(minutes=1)).isoformat(),
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="earlier",
    )
    assert earlier.status_code == 201, earlier.content

    with caplog.at_level(logging.WARNING, logger="clientdesk.followup.services"):
        sent = staff.post(
            f"/api/v1/clients/{client_obj.id}/messages",
            {"body": "Your passport, please", "expects_reply": True},
            format="json",
            HTTP_IDEMPOTENCY_KEY="ask",
        )
        assert sent.status_code == 201, sent.content
        assert sent.json()["reply_due_at"] is None
        assert sent.json()["reply_state"] == "none"

        answer = reply(portal_for(client_obj), "Here it is", key="answer")
        assert answer.status_code == 201, answer.content

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    assert all("follow-up clock skipped" in r.getMessage() for r in warnings)
    asked = Message.objects.get(pk=sent.json()["id"])
    assert asked.body == "Your passport, please"
    kept = Message.objects.get(pk=answer.json()["id"])
    assert (kept.direction, kept.body, kept.reply_due_at) == (Direction.IN, "Here it is", None)
    assert not FollowUpDue.objects.filter(message__in=[asked, kept]).exists()
    # The reply still answered the clock that was running.
    assert Message.objects.get(pk=earlier.json()["id"]).reply_state == ReplyState.ANSWERED

    # The worker's job runs over whatever is due, whatever the policy says.
    followup_overdue_run(now=timezone.now() + timedelta(days=30))


def test_the_worker_turns_clocks_overdue_under_a_stored_bad_policy(bad_policy, agent, client_obj):
    from tests.followup.test_clocks import send

    message = send(
        agent,
        client_obj,
        expects_reply=True,
        reply_due_at=timezone.now() + timedelta(seconds=5),
    )
    followup_overdue_run(now=timezone.now() + timedelta(seconds=10))
    message.refresh_from_db()
    assert message.reply_state == ReplyState.OVERDUE


def test_administrators_see_why_no_clock_runs(bad_policy, admin, viewer, api_for, client):
    body = api_for(admin).get("/api/v1/settings/follow-up")
    assert body.status_code == 200, body.content
    assert body.json()["problem"]
    assert body.json()["preview"]["reply_due_at"] is None
    assert "cannot be met" in body.json()["preview"]["text"]

    client.force_login(admin)
    page = client.get("/settings/follow-up/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Clocks are being skipped" in html and 'id="followup-alert"' in html
    # Every page carries the banner for administrators.
    assert 'id="followup-alert"' in client.get("/clients/").content.decode()

    client.force_login(viewer)
    messages_page = client.get("/messages/").content.decode()
    assert 'id="clock-notice"' in messages_page
    assert 'id="followup-alert"' not in messages_page  # the banner is for administrators


def test_saving_a_good_policy_over_a_bad_one_clears_the_notice(bad_policy, admin, api_for, client):
    api = api_for(admin)
    response = put(api, GOOD_POLICY)
    assert response.status_code == 200, response.content
    assert response.json()["problem"] is None
    client.force_login(admin)
    assert 'id="followup-alert"' not in client.get("/clients/").content.decode()


def test_the_settings_form_names_the_field_and_saves_nothing(admin, client):
    client.force_login(admin)
    before, ledger = stored(), ledger_size()
    form = {
        "reply_window_hours": "16",
        "response_window_hours": "300",
        "timezone": "Europe/Berlin",
        "holidays": "",
        "sun_open_day": "on",
        "sun_opens": "10:00",
        "sun_closes": "11:00",
    }
    response = client.post("/settings/follow-up/", form)
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="response-window-error"' in html and "do not fit in a year" in html
    assert stored() == before and ledger_size() == ledger
    for hostile in ({"reply_window_hours": "NaN"}, {"response_window_hours": "inf"}):
        response = client.post(
            "/settings/follow-up/", {**form, "response_window_hours": "4"} | hostile
        )
        assert response.status_code == 422
    assert stored() == before and ledger_size() == ledger


minutes = st.integers(0, 24 * 60 - 1).map(lambda m: f"{m // 60:02d}:{m % 60:02d}")
good_hours = st.dictionaries(
    st.sampled_from(EVERY_DAY),
    st.one_of(
        st.none(),
        st.lists(minutes, min_size=2, max_size=2, unique=True).map(sorted),
    ),
    min_size=1,
)
good_policies = st.fixed_dictionaries(
    {
        "reply_window_hours": st.one_of(st.floats(0, 40), st.integers(0, 2000)),
        "response_window_hours": st.one_of(st.floats(0, 40), st.integers(0, 2000)),
        "timezone": st.sampled_from(
            [
                "Europe/Berlin",
                "America/Santiago",  # DST at midnight: 00:00 missing one day a year
                "Asia/Tehran",
                "Australia/Lord_Howe",  # half-hour DST
                "Pacific/Apia",
                "Pacific/Chatham",
                "Asia/Kolkata",
                "UTC",
                "Etc/GMT+12",
            ]
        ),
        "business_hours": good_hours,
        "holidays": st.sampled_from([None, "", "DE", "US", "se", "DEU", "UK", "CL", "IR"]),
    }
)
hostile_values = {
    "reply_window_hours": st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not 0 <= f <= 2000),
        st.sampled_from([-1, 2001, 10**9, "8", True, None, [8]]),
    ),
    "timezone": st.one_of(st.text(max_size=40), st.sampled_from(["localtime", "Factory", None])),
    "business_hours": st.one_of(
        st.dictionaries(
            st.text(max_size=5),
            st.one_of(
                st.none(),
                st.lists(
                    st.one_of(
                        st.builds(
                            "{:02d}:{:02d}".format,
                            st.integers(0, 99),
                            st.integers(0, 99),
                        ),
                        st.text(max_size=6),
                        st.integers(),
                    ),
                    max_size=3,
                ),
            ),
            max_size=8,
        ),
        st.sampled_from([None, [], "always", 9]),
    ),
    "holidays": st.one_of(st.text(max_size=8), st.integers()),
}
hostile_values["response_window_hours"] = hostile_values["reply_window_hours"]


@st.composite
def policies(draw: st.DrawFn) -> dict:
    """Mostly well-formed policies (whether their windows fit their hours is the question),
    sometimes with one field hostile."""
    policy = draw(good_policies)
    if draw(st.integers(0, 3)) == 0:
        field = draw(st.sampled_from(sorted(hostile_values)))
        policy[field] = draw(hostile_values[field])
    return policy


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(policy=policies())
def test_any_policy_is_refused_or_every_clock_gets_a_due_time(
    policy, admin, agent, make_client, api_for, portal_for
):
    api = api_for(admin)
    before = stored()
    response = put(api, policy)
    event(f"PUT {response.status_code}")
    if response.status_code == 422:
        assert response["Content-Type"].startswith("application/problem+json")
        named = {name.split(".")[0].split("[")[0] for name in response.json()["errors"]}
        assert named & {*POLICY_FIELDS, "holidays"}, response.json()
        assert stored() == before
        return
    assert response.status_code == 200, response.content
    assert response.json()["problem"] is None
    key, client_obj = str(uuid.uuid4()), make_client()  # portal replies are rate-limited per client
    sent = api_for(agent).post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "Please reply", "expects_reply": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert sent.status_code == 201, sent.content
    assert sent.json()["reply_due_at"] is not None
    answer = reply(portal_for(client_obj), "Reply", key=key)
    assert answer.status_code == 201, answer.content
    assert Message.objects.get(pk=answer.json()["id"]).reply_due_at is not None
