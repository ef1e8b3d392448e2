"""The client turns news and offers (outreach) off and on in the cabinet's Notification settings,
and unsubscribes from an e-mail's link in a browser; each change is the client's own in the
ledger, and the cabinet shows what the server holds."""

import io
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from clientdesk.audit.models import ActorType, AuditEntry
from clientdesk.clients.consent import unsubscribe_token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PHONE = {"width": 390, "height": 844}


def portal_link(live_server, client) -> str:
    out = io.StringIO()
    call_command("portal_link", client.external_id, "--base-url", live_server.url, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def _changes(client) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(
            action="client.consent_changed", object_id=str(client.pk)
        ).order_by("id")
    )


def test_the_client_turns_outreach_off_and_on_in_the_cabinet(
    browser, live_server, client_obj, make_client, screenshot
) -> None:
    bystander = make_client()
    context = browser.new_context(viewport=PHONE)
    cabinet = context.new_page()
    errors: list[str] = []
    cabinet.on("pageerror", lambda error: errors.append(str(error)))
    try:
        cabinet.goto(portal_link(live_server, client_obj))
        settings_button = cabinet.get_by_role("button", name="Notification settings")
        expect(settings_button).to_have_attribute("aria-expanded", "false")
        settings_button.click()
        expect(settings_button).to_have_attribute("aria-expanded", "true")
        section = cabinet.get_by_role("region", name="Notification settings")
        expect(section).to_be_visible()
        expect(section).to_contain_text("Messages about your account always come")
        outreach = section.get_by_role("checkbox", name=re.compile("^News and offers from"))
        expect(outreach).to_be_checked()
        expect(outreach).to_be_enabled()
        screenshot(cabinet, "settings-phone")

        outreach.uncheck()
        expect(section.get_by_role("status")).to_have_text(
            "Saved: you will no longer receive news and offers."
        )
        expect(outreach).not_to_be_checked()
        client_obj.refresh_from_db()
        assert client_obj.outreach_opt_out is True
        (change,) = _changes(client_obj)
        assert (change.actor_type, change.actor_id) == (ActorType.CLIENT, str(client_obj.pk))
        assert change.data["via"] == "cabinet"

        # A fresh page reads the choice back from the server.
        cabinet.reload()
        cabinet.get_by_role("button", name="Notification settings").click()
        expect(outreach).not_to_be_checked()
        expect(outreach).to_be_enabled()

        outreach.check()
        expect(section.get_by_role("status")).to_have_text(
            "Saved: you will receive news and offers."
        )
        client_obj.refresh_from_db()
        assert client_obj.outreach_opt_out is False
        assert [c.data["after"]["outreach_opt_out"] for c in _changes(client_obj)] == [True, False]

        # Closing the section hides it; the inbox stays.
        cabinet.get_by_role("button", name="Notification settings").click()
        expect(section).to_be_hidden()
        expect(cabinet.get_by_label("Your reply")).to_be_visible()
    finally:
        context.close()
    bystander.refresh_from_db()
    assert bystander.outreach_opt_out is False and not _changes(bystander)
    assert not errors


def test_a_save_after_the_session_ended_signs_out_and_changes_nothing(
    browser, live_server, client_obj, agent
) -> None:
    from clientdesk.clients.services import client_update

    context = browser.new_context(viewport=PHONE)
    # Without its event stream the page does not hear that the session ended (a deactivation
    # closes the stream and signs the cabinet out at once): the next save is what finds out.
    context.route("**/portal/api/v1/events**", lambda route: route.abort())
    cabinet = context.new_page()
    try:
        cabinet.goto(portal_link(live_server, client_obj))
        cabinet.get_by_role("button", name="Notification settings").click()
        outreach = cabinet.get_by_role("checkbox", name=re.compile("^News and offers from"))
        expect(outreach).to_be_enabled()
        # The session ends (the client is deactivated) while the page is open.
        client_update(actor=agent, client_id=client_obj.id, changes={"is_active": False})
        outreach.uncheck()
        expect(cabinet.get_by_text("Your session has ended")).to_be_visible()
        client_obj.refresh_from_db()
        assert client_obj.outreach_opt_out is False and not _changes(client_obj)
    finally:
        context.close()


def test_the_unsubscribe_link_in_a_browser(page, live_server, client_obj) -> None:
    page.goto(f"/portal/unsubscribe/{unsubscribe_token(client_obj)}")
    expect(page.get_by_role("heading", name="Unsubscribe")).to_be_visible()
    expect(page.get_by_text("Messages about your account always come")).to_be_visible()
    client_obj.refresh_from_db()
    assert client_obj.outreach_opt_out is False  # opening the link changed nothing
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="Unsubscribed")).to_be_visible()
    expect(page.get_by_text("You will no longer receive news and offers")).to_be_visible()
    client_obj.refresh_from_db()
    assert client_obj.outreach_opt_out is True
    (change,) = _changes(client_obj)
    assert change.actor_type == ActorType.CLIENT and change.data["via"] == "unsubscribe_link"

    page.goto(f"/portal/unsubscribe/{unsubscribe_token(client_obj)[:-3]}xyz")
    expect(page.get_by_role("heading", name="Link not valid")).to_be_visible()
