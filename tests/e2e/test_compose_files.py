"""The send panel attaches files (uploaded as they are chosen) and asks for documents; the sent
message shows both, the client's cabinet gets an upload control per request."""

import pytest
from playwright.sync_api import expect

from clientdesk.messaging.models import DocumentRequest, Message, MessageAttachment
from tests.e2e.helpers import compose, open_send_panel, send_button, sent_items
from tests.messaging.test_documents import pdf_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
WAIT = 30_000


def test_the_panel_attaches_a_file_and_asks_for_documents(
    live_server, login, agent_user, client_obj
) -> None:
    staff = login(agent_user)
    dialog = open_send_panel(staff, client_obj)
    compose(dialog, "Your contract, {{firstName}}; please send two documents back.")
    dialog.get_by_text("Files and document requests").click()
    dialog.get_by_label("Attach files").set_input_files(
        {"name": "contract.pdf", "mimeType": "application/pdf", "buffer": pdf_bytes("contract")}
    )
    expect(dialog.get_by_role("button", name="Remove contract.pdf")).to_be_visible(timeout=WAIT)
    dialog.get_by_label("Ask for documents").fill("Passport\n\n  Utility bill <b>recent</b>  \n")
    send_button(dialog).click()
    expect(sent_items(dialog)).to_have_count(1, timeout=WAIT)
    item = sent_items(dialog).first
    expect(item.locator(".attachment-name")).to_have_text("contract.pdf")
    expect(item.locator(".document-request")).to_have_count(2)
    expect(item.locator(".document-label").nth(1)).to_have_text("Utility bill <b>recent</b>")
    expect(item.locator(".state-awaiting")).to_be_visible()
    message = Message.objects.get()
    assert message.expects_reply
    assert list(
        DocumentRequest.objects.filter(message=message).values_list("label", flat=True)
    ) == ["Passport", "Utility bill <b>recent</b>"]
    assert MessageAttachment.objects.get(message=message).file.name == "contract.pdf"
    # A fresh compose box: nothing of the sent message's files is left in it.
    expect(dialog.locator("#compose-attachments li")).to_have_count(0)
