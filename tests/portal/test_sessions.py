"""Portal sessions that last while the client is there: refresh before expiry (never past the
maximum age), sign-out on the server, a new sign-in link by e-mail (the same answer for a known
and an unknown address, rate-limited, sent through the e-mail delivery path to a real SMTP
server), and deactivation that ends sessions and links for good."""

import re
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from clientdesk.audit.models import AuditEntry
from clientdesk.clients.models import Client
from clientdesk.delivery.models import Channel, Delivery
from clientdesk.delivery.worker import Worker
from clientdesk.portal.models import PortalLink, PortalLinkRequest, PortalSession
from clientdesk.portal.services import portal_link_create
from tests.mail import Inbox, smtp_inbox
from tests.portal.conftest import reply
from tests.racing import race

pytestmark = pytest.mark.django_db(transaction=True)

REFRESH = "/portal/api/v1/session/refresh"
END = "/portal/api/v1/session/end"
LINK = "/portal/api/v1/session/link"


def bearer(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def session_of(api: Any) -> PortalSession:
    return PortalSession.objects.latest("created_at")


# --- refresh ----------------------------------------------------------------------------------


def test_refresh_before_expiry_gives_a_new_token_that_lasts_longer(
    portal_for, client_obj, settings
) -> None:
    portal = portal_for(client_obj)
    session = session_of(portal)
    # The session is near its end: 30 s left of its 15 minutes.
    PortalSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() + timedelta(seconds=30)
    )
    answer = portal.post(REFRESH)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert set(body) == {"token", "expires_at", "client_id"}
    assert body["client_id"] == str(client_obj.id)
    assert body["token"] != portal.token and body["token"].startswith("cdp_")
    session.refresh_from_db()
    left = session.expires_at - timezone.now()
    assert timedelta(minutes=14) < left <= timedelta(minutes=15)
    # The new token works; so does the old one until its own end (another tab may hold it).
    assert bearer(body["token"]).get("/portal/api/v1/messages").status_code == 200
    assert portal.get("/portal/api/v1/messages").status_code == 200
    # In the ledger, with the client as the actor.
    entry = AuditEntry.objects.filter(action="portal.session_refreshed").latest("id")
    assert entry.data["session_id"] == str(session.id)


def test_a_session_never_outlives_its_maximum_age(portal_for, client_obj, settings) -> None:
    portal = portal_for(client_obj)
    session = session_of(portal)
    signed_in = timezone.now() - timedelta(hours=12) + timedelta(minutes=5)
    PortalSession.objects.filter(pk=session.pk).update(created_at=signed_in)
    # Five minutes of its 12 hours left: a refresh gives those, not 15 more.
    answer = portal.post(REFRESH)
    assert answer.status_code == 200, answer.content
    session.refresh_from_db()
    assert session.expires_at == signed_in + timedelta(hours=12)
    # Past the maximum age the session is over, whatever its last refresh said.
    PortalSession.objects.filter(pk=session.pk).update(
        created_at=timezone.now() - timedelta(hours=12, seconds=1),
        expires_at=timezone.now() + timedelta(minutes=10),
    )
    refused = bearer(answer.json()["token"]).post(REFRESH)
    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/problem+json"
    assert portal.get("/portal/api/v1/messages").status_code == 401


def test_the_maximum_age_is_a_setting(portal_for, client_obj, settings) -> None:
    settings.PORTAL_SESSION_MAX_HOURS = 1
    portal = portal_for(client_obj)
    session = session_of(portal)
    PortalSession.objects.filter(pk=session.pk).update(
        created_at=timezone.now() - timedelta(minutes=59)
    )
    assert portal.post(REFRESH).status_code == 200
    session.refresh_from_db()
    assert session.expires_at <= session.created_at + timedelta(hours=1)


def test_an_expired_or_forged_token_is_refused(portal_for, client_obj) -> None:
    portal = portal_for(client_obj)
    session = session_of(portal)
    PortalSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    refused = portal.post(REFRESH)
    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/problem+json"
    assert refused["WWW-Authenticate"].startswith("Bearer")
    for token in (portal.token[:-2] + "xx", "cdp_" + "A" * 500, "x\u0000y", ""):
        answer = bearer(token).post(REFRESH)
        assert answer.status_code == 401, token
    # A staff token is never a portal token.
    assert APIClient().post(REFRESH).status_code == 401


def test_refresh_of_another_clients_session_is_impossible(portal_for, make_client) -> None:
    """The session is the token's own: no body, no id, nothing to point elsewhere."""
    alice, bob = make_client(), make_client()
    alice_portal, bob_portal = portal_for(alice), portal_for(bob)
    answer = alice_portal.post(
        REFRESH, {"session_id": str(session_of(bob_portal).id)}, format="json"
    )
    assert answer.status_code == 200
    assert answer.json()["client_id"] == str(alice.id)


def test_racing_refreshes_of_one_session_all_answer(portal_for, client_obj) -> None:
    portal = portal_for(client_obj)
    token = portal.token

    def refresh(n: int) -> int:
        return bearer(token).post(REFRESH).status_code

    results, errors = race(6, refresh)
    assert errors == [] and results == [200] * 6


# --- sign-out -------------------------------------------------------------------------------------


def test_sign_out_ends_the_session_and_every_token_of_it(portal_for, client_obj) -> None:
    portal = portal_for(client_obj)
    newer = portal.post(REFRESH).json()["token"]
    other = portal_for(client_obj)  # another device's session goes on
    assert portal.post(END).status_code == 204
    for token in (portal.token, newer):
        assert bearer(token).get("/portal/api/v1/messages").status_code == 401
        assert bearer(token).post(REFRESH).status_code == 401
    assert other.get("/portal/api/v1/messages").status_code == 200
    assert bearer(portal.token).post(END).status_code == 401
    assert AuditEntry.objects.filter(action="portal.session_ended").count() == 1


# --- a sign-in link by e-mail ------------------------------------------------------------------


@pytest.fixture
def inbox(settings: Any) -> Iterator[Inbox]:
    with smtp_inbox(settings, PUBLIC_URL="https://desk.example") as inbox:
        yield inbox


def ask(email: Any, ip: str = "203.0.113.7") -> Any:
    return APIClient().post(LINK, {"email": email}, format="json", REMOTE_ADDR=ip)


def test_a_link_by_email_arrives_and_signs_in_once(inbox, make_client) -> None:
    zoe = make_client(first_name="Zoë", email="Zoe@Example.de")
    answer = ask("  zoe@EXAMPLE.de ")
    assert answer.status_code == 202, answer.content
    (delivery,) = Delivery.objects.filter(channel=Channel.EMAIL, client=zoe)
    assert "#code=" not in str(delivery.subject_id)
    Worker(concurrency=1, name="mailer").run_once()
    (mail,) = inbox.messages
    assert mail["To"] == "Zoe@Example.de"
    assert mail["Subject"] == "Your sign-in link for Acme Wealth"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    (url,) = re.findall(r"https://desk\.example/portal/#code=[\w-]+", text)
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert f'href="{url}"' in html
    code = url.split("#code=", 1)[1]
    signed_in = APIClient().post("/portal/api/v1/session", {"code": code}, format="json")
    assert signed_in.status_code == 201
    assert signed_in.json()["client_id"] == str(zoe.id)
    again = APIClient().post("/portal/api/v1/session", {"code": code}, format="json")
    assert again.status_code == 410


def test_a_failed_send_is_retried(inbox, make_client) -> None:
    make_client(email="retry@example.de")
    inbox.fail_next = 1
    assert ask("retry@example.de").status_code == 202
    Worker(concurrency=1, name="mailer").run_once()
    assert inbox.messages == []
    Delivery.objects.update(next_attempt_at=timezone.now())
    Worker(concurrency=1, name="mailer").run_once()
    assert len(inbox.messages) == 1


def test_known_and_unknown_addresses_get_the_same_answer(inbox, make_client, settings) -> None:
    make_client(email="known@example.de")
    Client.objects.create(
        first_name="Old", last_name="Account", email="gone@example.de", is_active=False
    )
    answers = {}
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for round_ in range(3):
        for kind, email in (("known", "known@example.de"), ("unknown", "nobody@example.de")):
            started = time.monotonic()
            answer = ask(email, ip=f"198.51.100.{round_}")
            times[kind].append(time.monotonic() - started)
            answers[kind] = (answer.status_code, answer.json(), sorted(answer.headers))
    answers["deactivated"] = (lambda a: (a.status_code, a.json(), sorted(a.headers)))(
        ask("gone@example.de")
    )
    assert answers["known"] == answers["unknown"] == answers["deactivated"]
    assert answers["known"][0] == 202
    # Every answer takes at least the floor, known or not.
    floor = settings.PORTAL_LINK_REQUEST_SECONDS
    assert min(times["known"] + times["unknown"]) >= floor
    known, unknown = statistics.median(times["known"]), statistics.median(times["unknown"])
    print(f"median answer: known {known * 1000:.0f} ms, unknown {unknown * 1000:.0f} ms")
    assert abs(known - unknown) < floor / 2
    # Only the known, active address got a link.
    assert Delivery.objects.filter(channel=Channel.EMAIL).count() == 3
    Worker(concurrency=1, name="mailer").run_once()
    assert {m["To"] for m in inbox.messages} == {"known@example.de"}


def test_requests_are_limited_per_address_and_per_network_address(
    inbox, make_client, settings
) -> None:
    settings.PORTAL_LINK_REQUEST_SECONDS = 0.0
    make_client(email="known@example.de")
    for email in ("known@example.de", "nobody@example.de"):
        for i in range(settings.PORTAL_LINK_REQUESTS_PER_ADDRESS):
            assert ask(email, ip=f"192.0.2.{i}").status_code == 202
        # One more for the same address, from anywhere: refused alike, known or not.
        refused = ask(email, ip="192.0.2.200")
        assert refused.status_code == 429
        assert refused["Content-Type"] == "application/problem+json"
        assert 1 <= int(refused["Retry-After"]) <= 15 * 60 + 1
    # Per network address: many addresses from one place.
    settings.PORTAL_LINK_REQUESTS_PER_IP = 4
    for i in range(4):
        assert ask(f"someone{i}@example.org", ip="192.0.2.99").status_code == 202
    assert ask("someone-else@example.org", ip="192.0.2.99").status_code == 429
    assert ask("someone-else@example.org", ip="192.0.2.98").status_code == 202
    # Three links for the known address, however many were asked for.
    assert Delivery.objects.filter(channel=Channel.EMAIL).count() == 3


@pytest.mark.parametrize(
    "body",
    ['{"email": ""}', '{"email": "not an address"}', '{"email": "a@b"}',
     '{"email": "' + "x" * 300 + '@example.de"}', '{"email": "<script>@x.de"}',
     '{"email": null}', '{"email": ["a@b.de"]}', '{"email": {"a": "b"}}', "{}", "[]", "7",
     '{"email": "zoe\\u0000@example.de"}', '{"email": "zoe\\ud800@example.de"}',
     '{"email": ' * 40 + "1" + "}" * 40, "{not json"],
)  # fmt: skip
def test_a_malformed_address_is_a_clear_problem(inbox, body) -> None:
    answer = APIClient().post(LINK, body, content_type="application/json")
    assert answer.status_code in (400, 422), answer.content
    assert answer["Content-Type"] == "application/problem+json"
    assert PortalLinkRequest.objects.count() == 0
    assert Delivery.objects.count() == 0


# --- deactivation ------------------------------------------------------------------------------


def test_deactivation_ends_sessions_and_links_for_good(
    agent, api_for, portal_for, client_obj
) -> None:
    staff = api_for(agent)
    portal = portal_for(client_obj)
    code = portal_link_create(client=Client.objects.get(pk=client_obj.pk))
    assert reply(portal, "before").status_code == 201

    off = staff.patch(f"/api/v1/clients/{client_obj.id}", {"is_active": False}, format="json")
    assert off.status_code == 200
    assert PortalSession.objects.get(pk=session_of(portal).pk).revoked_at is not None
    assert PortalLink.objects.get(client=client_obj).revoked_at is not None

    on = staff.patch(f"/api/v1/clients/{client_obj.id}", {"is_active": True}, format="json")
    assert on.status_code == 200
    # Reactivation revives nothing: the old token and the unused link stay dead.
    assert portal.get("/portal/api/v1/messages").status_code == 401
    assert portal.post(REFRESH).status_code == 401
    used = APIClient().post("/portal/api/v1/session", {"code": code}, format="json")
    assert used.status_code == 410
    # New ones work.
    assert portal_for(client_obj).get("/portal/api/v1/messages").status_code == 200
    fresh = portal_link_create(client=Client.objects.get(pk=client_obj.pk))
    signed_in = APIClient().post("/portal/api/v1/session", {"code": fresh}, format="json")
    assert signed_in.status_code == 201


def test_a_deactivated_client_asking_for_a_link_gets_none(inbox, make_client) -> None:
    client = make_client(email="off@example.de")
    Client.objects.filter(pk=client.pk).update(is_active=False)
    assert ask("off@example.de").status_code == 202
    assert not PortalLink.objects.filter(client=client).exists()


def test_tokens_of_other_clients_are_not_touched_by_a_deactivation(
    agent, api_for, portal_for, make_client
) -> None:
    alice, bob = make_client(), make_client()
    alice_portal, bob_portal = portal_for(alice), portal_for(bob)
    api_for(agent).patch(f"/api/v1/clients/{alice.id}", {"is_active": False}, format="json")
    assert alice_portal.get("/portal/api/v1/messages").status_code == 401
    assert bob_portal.get("/portal/api/v1/messages").status_code == 200
