"""The Audit page in a real browser: a send shows up as a record, "Verify now" reports the
ledger intact against the signed checkpoint, downloads work, and it reads at 1280 and 390 px."""

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from clientdesk.accounts.models import User
from clientdesk.audit.services import audit_checkpoint_create
from clientdesk.clients.models import Client
from tests.e2e.helpers import message_box, open_send_panel, send_button, toasts

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_send_then_verify_now_on_the_audit_page(
    login: Callable[[User], Page],
    make_staff: Callable[..., User],
    make_client: Callable[..., Client],
    screenshot: Callable[[Any, str], Any],
) -> None:
    admin = make_staff("Administrator", first_name="Ada", last_name="Admin")
    client = make_client(first_name="Zoë", last_name="Audit")
    page = login(admin)
    dialog = open_send_panel(page, client)
    message_box(dialog).fill("Your documents are ready.")
    send_button(dialog).click()
    expect(toasts(page, "status")).to_be_visible()
    audit_checkpoint_create()  # what the worker does a few minutes later

    page.keyboard.press("Escape")  # close the panel (a modal dialog)
    expect(dialog).to_be_hidden()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page).to_have_url(re.compile(r"/audit/$"))
    expect(page.get_by_role("heading", name="Audit", level=1)).to_be_visible()
    records = page.get_by_role("region", name="Audit records")
    newest = records.get_by_role("row").nth(1)
    expect(newest).to_contain_text(
        f"Ada Admin sent a message to Zoë Audit ({client.external_id})", use_inner_text=True
    )
    # The raw record is one click away.
    raw = newest.locator("details")
    expect(raw.get_by_text(str(client.id))).to_be_hidden()
    raw.get_by_text("Details").click()
    expect(raw.get_by_text(str(client.id))).to_be_visible()
    expect(raw).to_contain_text("message.sent")
    # The ledger holds the client's creation, then the send.
    expect(page.locator("pre.note")).to_contain_text("\n2\n")

    page.get_by_role("button", name="Verify now").click()
    result = page.locator("#verify-result").get_by_role("status")
    expect(result).to_contain_text("Intact.")
    expect(result).to_contain_text("the first 2 match the signed checkpoint exactly")
    screenshot(page, "audit-1280")

    page.get_by_label("Action").select_option("message.sent")
    expect(page).to_have_url(re.compile(r"action=message.sent"))
    expect(records.get_by_role("row")).to_have_count(2)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download checkpoint").click()
    assert download.value.suggested_filename == "checkpoint-2.txt"
    with page.expect_download() as download:
        page.get_by_role("link", name="Download public key").click()
    assert download.value.suggested_filename.endswith(".pem")

    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_role("button", name="Verify now")).to_be_visible()
    screenshot(page, "audit-390")
