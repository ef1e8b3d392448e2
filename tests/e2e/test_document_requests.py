"""A KYC request end to end in two browsers: staff ask for two documents, the client answers each
from a phone-sized cabinet (a photo and a PDF, each against its own request, with upload
progress), and the staff panel shows each request received, live, with a preview of the photo;
the message's reply clock is answered only by the second document."""

import re
import uuid

import pytest
from playwright.sync_api import expect

from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import DocumentRequest, Message
from clientdesk.messaging.services.sending import message_send
from tests.e2e.helpers import open_send_panel, sent_items
from tests.e2e.test_portal_journey import PHONE, portal_link
from tests.messaging.test_documents import pdf_bytes, png_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
WAIT = 30_000


def test_a_kyc_request_answered_from_a_phone_shows_live_on_the_staff_side(
    browser, live_server, login, agent_user, client_obj, screenshot
) -> None:
    result = message_send(
        sender=agent_user,
        client_id=client_obj.id,
        body="Please send your passport and a recent utility bill.",
        document_requests=[{"label": "Passport"}, {"label": "Utility bill"}],
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    staff = login(agent_user)
    staff.goto("/clients/")
    dialog = open_send_panel(staff, client_obj)
    requests = dialog.locator(".document-request")
    expect(requests).to_have_count(2)
    expect(requests.nth(0)).to_contain_text("Passport · Waiting for the client")

    context = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True)
    cabinet = context.new_page()
    errors: list[str] = []
    cabinet.on("pageerror", lambda error: errors.append(str(error)))
    try:
        cabinet.goto(portal_link(live_server, client_obj))
        passport = cabinet.get_by_label("Upload Passport")
        expect(passport).to_be_attached(timeout=WAIT)
        # The phone's camera or files: images and PDFs only.
        assert passport.get_attribute("accept") == "image/*,application/pdf"
        assert passport.get_attribute("capture") == "environment"
        screenshot(cabinet, "cabinet-phone-document-requests")

        passport.set_input_files(
            {"name": "passport.png", "mimeType": "image/png", "buffer": png_bytes(40, 30)}
        )
        expect(cabinet.get_by_text("Sent: passport.png")).to_be_visible(timeout=WAIT)
        received = dialog.locator(".document-request", has_text="Passport")
        expect(received).to_contain_text("Received", timeout=WAIT)
        # The photo's preview: an image loaded from the download URL.
        preview = dialog.locator(".attachment img").first
        expect(preview).to_be_visible(timeout=WAIT)
        staff.wait_for_function(
            "img => img.complete && img.naturalWidth === 40", arg=preview.element_handle()
        )
        assert Message.objects.get(pk=result.message_id).reply_state == "awaiting"
        expect(dialog.locator(".document-request", has_text="Utility bill")).to_contain_text(
            "Waiting for the client"
        )

        cabinet.get_by_label("Upload Utility bill").set_input_files(
            {"name": "bill.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes()}
        )
        expect(cabinet.get_by_text("Sent: bill.pdf")).to_be_visible(timeout=WAIT)
        expect(dialog.locator(".document-received")).to_have_count(2, timeout=WAIT)
        expect(dialog.locator(".state-answered")).to_be_visible(timeout=WAIT)
        expect(sent_items(dialog).filter(has_text=re.compile("bill.pdf"))).not_to_have_count(0)
        screenshot(cabinet, "cabinet-phone-documents-sent")
        screenshot(dialog, "staff-panel-documents-received")
    finally:
        context.close()
    assert not errors
    assert set(DocumentRequest.objects.values_list("status", flat=True)) == {"received"}
    assert Message.objects.get(pk=result.message_id).reply_state == "answered"


def test_a_reply_with_a_file_from_the_cabinet(
    browser, live_server, login, agent_user, client_obj
) -> None:
    staff = login(agent_user)
    dialog = open_send_panel(staff, client_obj)
    context = browser.new_context(viewport=PHONE)
    cabinet = context.new_page()
    errors: list[str] = []
    cabinet.on("pageerror", lambda error: errors.append(str(error)))
    try:
        cabinet.goto(portal_link(live_server, client_obj))
        expect(cabinet.get_by_label("Your reply")).to_be_visible(timeout=WAIT)
        cabinet.get_by_label("Attach files").set_input_files(
            {"name": "signed.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes("signed")}
        )
        expect(cabinet.get_by_text(re.compile(r"^signed\.pdf · "))).to_be_visible(timeout=WAIT)
        cabinet.get_by_label("Your reply").fill("Signed and attached.")
        cabinet.get_by_role("button", name="Send reply").click()
        expect(cabinet.locator(".reply-attachments li")).to_have_count(0, timeout=WAIT)
        reply = sent_items(dialog).filter(has_text="Signed and attached.")
        expect(reply.locator(".attachment-name")).to_have_text("signed.pdf", timeout=WAIT)
    finally:
        context.close()
    assert not errors
    (message,) = Message.objects.filter(direction="in")
    assert [a.file.name for a in message.attachments.all()] == ["signed.pdf"]
