"""The Audit page and the Activity log read as sentences naming the client (name and external
id), the actor and the template, with the raw record one click away in "Details"; the JSON API
keeps the raw values (issue 15, item 10: summaries showed raw UUIDs and field names)."""

import ast
import html
import io
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clientdesk.accounts.roles import Role
from clientdesk.accounts.services import (
    api_token_create,
    api_token_revoke,
    login_lockout_reset,
    recovery_codes_renew,
    role_create,
    role_permissions_changed_record,
    role_rename,
    two_factor_disable,
    two_factor_enable,
    two_factor_verify,
    user_change,
    user_create,
    user_invitation_send,
    user_invite,
    user_password_changed_record,
    user_permissions_changed_record,
    user_roles_set,
    user_sessions_end,
)
from clientdesk.accounts.two_factor import totp_for, totp_secret_new
from clientdesk.audit.models import ActivityType, AuditRecord
from clientdesk.audit.sentences import ACTIONS, ACTIVITY_SENTENCES, record_names, record_sentence
from clientdesk.audit.services import audit_append, audit_sequence
from clientdesk.clients.consent import client_consent_change
from clientdesk.clients.services import client_update, clients_bulk_create
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Delivery
from clientdesk.delivery.services.endpoints import endpoint_configure, endpoint_rotate_secret
from clientdesk.delivery.services.queue import delivery_retry_now
from clientdesk.followup.services import policy_update
from clientdesk.messaging.services.sending import message_send
from clientdesk.messaging.services.templates import Rename, template_change, template_create
from clientdesk.outreach.services import (
    broadcast_cancel,
    broadcast_create,
    broadcast_request_parse,
    outreach_settings_update,
)
from clientdesk.portal.services import (
    portal_link_create,
    portal_message_read,
    portal_reply_create,
    portal_session_end,
    portal_session_issue,
    portal_session_refresh,
)
from tests.sending import send_text

pytestmark = pytest.mark.django_db
SRC = Path(__file__).resolve().parents[2] / "src" / "clientdesk"
HOSTILE_NAME = '<img src=x onerror="alert(1)">\u202eevil\u202c ' + "ش" * 60


def _written_actions() -> dict[str, str]:
    """Every ledger action the code writes: the `action=` of each call to `audit_append`,
    `audit_build` or `ledger_record`, read from the source, with where it is written."""
    found: dict[str, str] = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            name = getattr(call.func, "id", getattr(call.func, "attr", ""))
            if name not in {"audit_append", "audit_build", "ledger_record"}:
                continue
            for keyword in call.keywords:
                if keyword.arg != "action":
                    continue
                if ast.unparse(keyword.value) == "record.action":
                    continue  # audit_append_recorded: the `ledger_record` calls name its actions
                constants = [
                    n.value
                    for n in ast.walk(keyword.value)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str)
                ]
                where = f"{path.relative_to(SRC)}:{call.lineno}"
                assert constants, f"{where}: an action computed at run time has no sentence"
                found.update(dict.fromkeys(constants, where))
    return found


def test_every_action_the_code_writes_has_a_sentence():
    written = _written_actions()
    assert {"message.sent", "client.changed", "user.changed", "endpoint.created"} <= set(written)
    missing = sorted(
        f"{action} ({where})" for action, where in written.items() if action not in ACTIONS
    )
    assert not missing, "ledger actions without a sentence in audit/sentences.py: " + ", ".join(
        missing
    )
    assert set(ACTIONS) <= set(written), "sentences for actions nothing writes"


def test_every_timeline_event_type_has_a_sentence():
    assert set(ActivityType) == set(ACTIVITY_SENTENCES)


@pytest.fixture
def administrator(make_user):
    return make_user(Role.ADMINISTRATOR, first_name="Ada", last_name="Admin")


@pytest.fixture
def every_action(settings, tmp_path, make_user, make_client, agent, administrator):
    """A ledger with a record of every kind, each written by the real service."""
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    target = make_client(first_name="Zoë", last_name="Müller", external_id="CRM-42")
    client_update(actor=agent, client_id=target.id, changes={"last_name": "Ortega"})
    client_update(actor=agent, client_id=target.id, changes={"is_active": False})
    client_update(actor=agent, client_id=target.id, changes={"is_active": True})
    client_consent_change(
        client_id=target.id, opt_out=True, actor=None, by_client=True, via="unsubscribe_link"
    )
    client_consent_change(
        client_id=target.id, opt_out=False, actor=agent, by_client=False, via="api"
    )
    version = template_create(author=administrator, name="Welcome", body="Hi", language="en")
    endpoint_configure(user=administrator, url="http://127.0.0.1:9/hook", enabled=True)
    endpoint_rotate_secret(user=administrator)
    endpoint_configure(user=administrator, url="http://127.0.0.1:9/hook", enabled=True)
    sent = message_send(
        sender=agent,
        client_id=target.id,
        template_id=version.template_id,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    template_change(
        author=administrator, template_id=version.template_id, actions=[Rename("Hello again")]
    )
    send_text(agent, target, "Plain")
    delivery_retry_now(
        delivery_id=Delivery.objects.filter(subject_id=sent.message_id).first().pk,
        actor=administrator,
    )
    portal_link_create(client=target)
    issued = portal_session_issue(
        issuer=make_user(Role.INTEGRATION, first_name="Portal", last_name="Backend"),
        token=None,
        client_id=target.id,
    )
    # Near its end, so the refresh moves it (and is recorded).
    issued.session.expires_at = timezone.now() + timedelta(seconds=30)
    issued.session.save(update_fields=["expires_at"])
    portal_session_refresh(session=issued.session)
    portal_session_end(session=issued.session)
    portal_message_read(client=target, message_id=sent.message_id)
    portal_reply_create(
        client=target,
        body="Thanks",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        in_reply_to=sent.message_id,
    )
    token, _ = api_token_create(user=agent, actor=administrator, name="CRM sync")
    api_token_revoke(token=token, actor=administrator)
    newcomer = user_create(actor=administrator, username="newcomer", password="x" * 20)
    user_change(actor=administrator, user_id=newcomer.pk, changes={"is_superuser": True})
    user_password_changed_record(actor=administrator, user=newcomer)
    user_roles_set(actor=administrator, user=newcomer, roles=[Role.AGENT])
    with transaction.atomic():
        newcomer.user_permissions.add(Permission.objects.get(codename="export_messages"))
        user_permissions_changed_record(actor=administrator, user=newcomer, before=[])
    role = role_create(actor=administrator, name="Auditors")
    role = role_rename(actor=administrator, group_id=role.pk, name="Outside auditors")
    with transaction.atomic():
        role.permissions.add(Permission.objects.get(codename="export_messages"))
        role_permissions_changed_record(actor=administrator, group=role, before=[])
    attempt = AccessAttempt.objects.create(
        username="newcomer",
        ip_address="203.0.113.9",
        failures_since_start=5,
        get_data="",
        post_data="",
        http_accept="",
        path_info="/accounts/login/",
        user_agent="test",
    )
    login_lockout_reset(actor=administrator, attempt_ids=[attempt.pk])
    invitee = user_invite(
        actor=administrator, email="ines@example.com", first_name="Ines", last_name="Vite", roles=[]
    )
    user_invitation_send(actor=administrator, user_id=invitee.pk, base_url="http://desk.example")
    Client().force_login(newcomer)
    user_sessions_end(actor=administrator, user=newcomer)
    key = totp_secret_new()
    two_factor_enable(user=newcomer, key=key, code=f"{totp_for(key).token():06d}")
    codes = recovery_codes_renew(user=newcomer)
    two_factor_verify(user=newcomer, code=codes[0])
    two_factor_disable(actor=administrator, user=newcomer)
    clients_bulk_create(rows=[{"external_id": "BULK-1", "first_name": "Bo"}], actor=administrator)
    policy_update(
        user=administrator,
        data={
            "reply_window_hours": 8,
            "response_window_hours": 2,
            "timezone": "Europe/Berlin",
            "business_hours": {d: ["09:00", "17:00"] for d in ["mon", "tue", "wed", "thu", "fri"]}
            | {"sat": None, "sun": None},
            "holidays": None,
        },
    )
    call_command(
        "export_messages",
        "--format",
        "csv",
        "--client",
        str(target.id),
        "-o",
        str(tmp_path / "out.csv"),
        stdout=io.StringIO(),
    )
    outreach_settings_update(
        actor=administrator,
        data={
            "quiet_hours": ["21:00", "08:00"],
            "default_timezone": "Europe/Berlin",
            "max_outreach_per_week": 3,
        },
    )
    request = broadcast_request_parse(
        {"audience": {"client_ids": [str(target.id)]}, "body": "Hello", "category": "service"}
    )
    broadcast, _ = broadcast_create(
        actor=administrator, request=request, idempotency_key="b-1", meta=RequestMeta()
    )
    broadcast_cancel(actor=administrator, broadcast_id=broadcast.id)
    for action, data in [  # these need a remote server's answer; their data as written
        ("endpoint.tested", {"status_code": 200, "error": ""}),
        ("endpoint.disabled", {"reason": "Failing for 3 days (last: HTTP 500)."}),
    ]:
        with transaction.atomic():
            audit_append(
                actor=administrator if action == "endpoint.tested" else None,
                action=action,
                object_type="outgoing_endpoint",
                object_id=1,
                created_at=timezone.now(),
                data=data,
            )
    audit_sequence()
    return {"client": target, "message_id": sent.message_id}


def _page(client, user, **params) -> str:
    client.force_login(user)
    return client.get("/audit/", {**params}, HTTP_HX_REQUEST="true").content.decode()


def _sentences(page: str) -> list[str]:
    found = re.findall(r'<p class="audit-sentence">(.*?)</p>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", s)).strip() for s in found]


def test_each_record_reads_as_a_sentence_naming_who_and_what(client, administrator, every_action):
    written = set(AuditRecord.objects.values_list("action", flat=True))
    assert set(ACTIONS) <= written, f"the fixture misses {set(ACTIONS) - written}"
    page = _page(client, administrator)
    said = _sentences(page)
    expected = [
        "Alex Agent sent a message to Zoë Ortega (CRM-42) from template “Welcome” (version 1)",
        "Alex Agent sent a message to Zoë Ortega (CRM-42)",
        "Ada Admin changed template “Welcome”: renamed it “Hello again”",
        "Zoë Ortega (CRM-42) read a message",
        "Zoë Ortega (CRM-42) replied to a message",
        "Alex Agent changed client Zoë Ortega (CRM-42): last name",
        "Alex Agent deactivated client Zoë Ortega (CRM-42)",
        "Alex Agent reactivated client Zoë Ortega (CRM-42)",
        "Zoë Ortega (CRM-42) turned outreach off (unsubscribe_link)",
        "Alex Agent turned outreach back on for Zoë Ortega (CRM-42) (api)",
        "Clientdesk added client Zoë Ortega (CRM-42)",
        "Ada Admin created template “Welcome”",
        "Ada Admin revoked API token",
        "Ada Admin added staff user newcomer",
        "Ada Admin made newcomer a superuser",
        "Ada Admin set a new password for newcomer",
        "Ada Admin changed the roles of newcomer from none to Agent",
        "Ada Admin changed the permissions of newcomer: added messaging.export_messages; "
        "removed none",
        "Ada Admin created role Auditors",
        "Ada Admin renamed role Auditors to Outside auditors",
        "Ada Admin changed the permissions of role Outside auditors: added "
        "messaging.export_messages; removed none",
        "Ada Admin lifted the sign-in lockout of newcomer from 203.0.113.9",
        "Ada Admin sent Ines Vite an invitation to ines@example.com, valid until 20",
        "Ada Admin ended 1 session of newcomer",
        "newcomer turned on two-factor sign-in for newcomer",
        "newcomer made new recovery codes for newcomer",
        "newcomer signed in with a recovery code (9 left)",
        "Ada Admin turned off two-factor sign-in for newcomer",
        "Ada Admin imported 1 client",
        "Ada Admin changed the follow-up policy: replies due in 8 business hours, responses in "
        "2 business hours, time zone Europe/Berlin",
        "Clientdesk exported 3 messages as csv (manage.py export_messages), to Zoë Ortega (CRM-42)",
        "Ada Admin set up the outgoing webhook endpoint: http://127.0.0.1:9/hook (enabled)",
        "Ada Admin changed the outgoing webhook endpoint: http://127.0.0.1:9/hook (enabled)",
        "Portal Backend opened a client portal session for Zoë Ortega (CRM-42)",
        "Ada Admin rotated the webhook signing secret",
        "Ada Admin retried a webhook delivery of a message",
        "Clientdesk created a portal sign-in link for Zoë Ortega (CRM-42)",
        "Zoë Ortega (CRM-42) renewed their portal session",
        "Zoë Ortega (CRM-42) signed out of the portal",
        "Ada Admin sent a test event to the webhook endpoint: HTTP 200",
        "Clientdesk disabled the outgoing webhook endpoint: Failing for 3 days",
        "Ada Admin changed the outreach settings: quiet hours 21:00–08:00, default time zone "
        "Europe/Berlin, at most 3 outreach messages a week",
        "Ada Admin created a service broadcast to 1 client",
        "Ada Admin cancelled a broadcast: 1 message not sent, 0 sent before",
    ]
    for sentence in expected:
        assert any(s.startswith(sentence) for s in said), (sentence, "\n".join(said))
    assert any(
        s.startswith("Ada Admin issued API token cd_") and s.endswith("… for Alex Agent")
        for s in said
    )
    # No raw UUID in any sentence; the raw values are in each record's Details.
    assert not [s for s in said if re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", s)]
    assert page.count("<summary>Details</summary>") == len(said) == AuditRecord.objects.count()
    client_id = str(every_action["client"].id)
    details = page[page.index("<summary>Details</summary>") :]
    assert client_id in details and "body_sha256" in details


def test_the_action_filter_offers_labels_and_filters_by_the_raw_action(
    client, administrator, every_action
):
    client.force_login(administrator)
    whole = client.get("/audit/").content.decode()
    assert '<option value="message.sent" >Message sent</option>' in whole
    section = _page(client, administrator, action="user.changed")
    assert _sentences(section) == ["Ada Admin made newcomer a superuser"]


def test_a_page_of_records_costs_the_same_queries_whatever_it_names(
    client, administrator, make_client, agent
):
    def send_to_new_clients(n: int) -> None:
        for _ in range(n):
            send_text(agent, make_client(), "Hello")
        audit_sequence()

    send_to_new_clients(2)
    client.force_login(administrator)
    client.get("/audit/", HTTP_HX_REQUEST="true")  # rows made once, on first use (the policy)
    with CaptureQueriesContext(connection) as few:
        client.get("/audit/", HTTP_HX_REQUEST="true")
    send_to_new_clients(20)
    with CaptureQueriesContext(connection) as many:
        page = client.get("/audit/", HTTP_HX_REQUEST="true").content.decode()
    assert len(_sentences(page)) == 44
    assert len(many.captured_queries) == len(few.captured_queries), [
        q["sql"][:120] for q in many.captured_queries
    ]


def test_hostile_names_are_escaped_isolated_and_bounded(client, administrator, make_client, agent):
    target = make_client(first_name=HOSTILE_NAME, last_name="", external_id="X-<b>1</b>")
    send_text(agent, target, "Hello")
    audit_sequence()
    page = _page(client, administrator)
    assert "<img src=x" not in page and "<b>1</b>" not in page
    sentence = re.search(r'<p class="audit-sentence">(.*?)</p>', page, re.S).group(1)
    assert sentence.count("<bdi>") >= 2  # the actor, the client's name, its external id
    named = re.findall(r"<bdi>(.*?)</bdi>", sentence)
    assert all(len(html.unescape(n)) <= 80 for n in named)
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in sentence


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    action=st.sampled_from(sorted(ACTIONS)),
    data=st.dictionaries(
        st.sampled_from(
            [
                "client_id",
                "template_id",
                "template_version",
                "name",
                "before",
                "after",
                "rows",
                "filters",
                "via",
                "user_id",
                "prefix",
                "username",
                "usable",
                "added",
                "removed",
                "role",
                "count",
                "url",
                "enabled",
                "reason",
                "status_code",
                "error",
                "channel",
                "in_reply_to",
                "ip_address",
                "failures",
                "version",
                "is_active",
                "timezone",
            ]
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=300),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=10), inner, max_size=4)
            ),
            max_leaves=10,
        ),
        max_size=6,
    ),
    hostile=st.sampled_from([HOSTILE_NAME, "<script>alert(1)</script>", "\x00", "\ud800"[:0]]),
)
def test_any_data_makes_an_escaped_bounded_sentence(action, data, hostile):
    record = AuditRecord(
        sequence=1,
        actor_type="staff",
        actor_id=str(uuid.uuid4()),
        actor_label=hostile,
        action=action,
        object_type="client",
        object_id=hostile,
        data={k: (hostile if isinstance(v, str) else v) for k, v in data.items()},
    )
    sentence = str(record_sentence(record, record_names([])))
    assert "<script" not in sentence and "<img" not in sentence
    assert len(sentence) < 3000


def test_the_json_api_keeps_the_raw_values(api_for, administrator, every_action):
    records = api_for(administrator).get("/api/v1/audit/records", {"limit": 1000}).json()
    sent = next(r for r in records["results"] if r["action"] == "message.sent")
    assert sent["data"]["client_id"] == str(every_action["client"].id)
    assert set(sent) == {
        "sequence",
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "data",
        "prev_hash",
        "hash",
    }


def test_the_activity_log_reads_as_sentences_with_details(client, agent, every_action):
    target = every_action["client"]
    client.force_login(agent)
    page = client.get(f"/clients/{target.id}/activity/").content.decode()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "Message sent by Alex Agent" in text
    assert "Reply from the client, Zoë" in text
    assert page.count("<summary>Details</summary>") >= 3
    assert str(every_action["message_id"]) in page  # the raw id, one click away
    assert "message.sent" in page


def test_the_activity_log_escapes_and_isolates_a_hostile_actor(client, make_user, make_client):
    sender = make_user(Role.AGENT, first_name=HOSTILE_NAME, last_name="")
    target = make_client()
    send_text(sender, target, "Hello")
    client.force_login(sender)
    page = client.get(f"/clients/{target.id}/activity/").content.decode()
    assert "<img src=x" not in page
    meta = re.search(r'<p class="timeline-meta"><strong>(.*?)</strong>', page, re.S).group(1)
    assert meta.startswith("Message sent by <bdi>")
    assert len(html.unescape(re.search(r"<bdi>(.*?)</bdi>", meta).group(1))) <= 80
