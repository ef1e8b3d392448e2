"""The Clients page's "Import clients" in a browser (choose a CSV, preview with the errors by line,
import, report, the new clients in the list) at 1280 and 390 px; the drawer's time zone and
recorded opt-out."""

import re

import pytest
from playwright.sync_api import expect

from clientdesk.audit.models import AuditEntry, AuditRecord
from clientdesk.clients.models import Client

PHONE = {"width": 390, "height": 844}
CSV = (
    "external_id,first_name,last_name,email,timezone,attr:tier\r\n"
    "WEB-1,Zoë,Quintavalle,zoe@example.it,Europe/Rome,gold\r\n"
    "WEB-2,,Nameless,,,\r\n"
    'WEB-3,"Ana ""Nina""",Silva,ana@example.pt,Mars/Base,\r\n'
    "WEB-4,<img src=x onerror=alert(1)>,Lee,,,\r\n"
)


def _no_sideways_scroll(page) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_import_clients_with_a_preview_then_the_report(
    page, login, make_staff, tmp_path, screenshot, viewport
):
    if viewport:
        page.set_viewport_size(viewport)
    login(make_staff("Agent"))
    page.goto("/clients/")
    page.get_by_role("button", name="Import clients").click()
    dialog = page.get_by_role("dialog", name="Import clients")
    expect(dialog).to_be_visible()
    path = tmp_path / "clients.csv"
    path.write_text(CSV, encoding="utf-8")
    dialog.get_by_label("CSV file").set_input_files(str(path))
    dialog.get_by_role("button", name="Preview").click()
    expect(dialog.locator("#import-summary")).to_have_text(
        "2 new, 0 to update, 0 unchanged, 2 rows with errors.", timeout=30_000
    )
    rows = dialog.get_by_role("table", name="First rows")
    expect(rows).to_contain_text("Quintavalle")
    expect(rows).to_contain_text("<img src=x onerror=alert(1)>")  # as text, never markup
    errors = dialog.get_by_role("list", name="Errors by line")
    expect(errors).to_contain_text("Line 3: first_name: This field cannot be blank.")
    expect(errors).to_contain_text("Line 4: timezone:")
    assert Client.objects.count() == 0
    if viewport:
        _no_sideways_scroll(page)
    screenshot(page, f"client-import-preview-{'390' if viewport else '1280'}")

    dialog.get_by_role("button", name="Import 2 clients").click()
    expect(dialog.get_by_role("status").filter(has_text="created")).to_have_text(
        "2 created, 0 updated, 0 unchanged, 2 rows with errors (not imported).", timeout=30_000
    )
    assert set(Client.objects.values_list("external_id", flat=True)) == {"WEB-1", "WEB-4"}
    imported = [
        record.data
        for model in (AuditEntry, AuditRecord)
        for record in model.objects.filter(action="clients.imported")
    ]
    assert len(imported) == 1 and imported[0]["created"] == 2
    if viewport:
        _no_sideways_scroll(page)
    dialog.get_by_role("button", name="Close").click()
    page.get_by_label("Search clients").fill("quintaval")
    expect(page.get_by_role("link", name="Zoë Quintavalle")).to_be_visible(timeout=30_000)


def test_import_button_is_absent_for_a_viewer(page, login, make_staff):
    login(make_staff("Viewer"))
    page.goto("/clients/")
    expect(page.get_by_role("heading", name="Clients")).to_be_visible()
    expect(page.get_by_role("button", name="Import clients")).to_have_count(0)


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_the_drawer_shows_and_changes_time_zone_and_consent(
    page, login, make_staff, make_client, viewport
):
    if viewport:
        page.set_viewport_size(viewport)
    person = make_client(first_name="Kofi", last_name="Mensah")
    login(make_staff("Agent"))
    page.goto("/clients/")
    page.get_by_role("link", name="Kofi Mensah").click()
    drawer = page.get_by_role("dialog", name="Kofi Mensah")
    expect(drawer).to_contain_text("Default (outreach setting)")
    expect(drawer).to_contain_text("Receives outreach")
    drawer.get_by_label("Client's time zone").select_option("Africa/Accra")
    drawer.get_by_role("button", name="Save time zone").click()
    expect(page.get_by_role("status").filter(has_text="Time zone set")).to_be_visible(
        timeout=30_000
    )
    expect(drawer.locator(f"#client-timezone-{person.id}")).to_have_text("Africa/Accra")

    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    drawer.get_by_role("button", name="Record opt-out request").click()
    expect(drawer.locator(f"#client-outreach-{person.id}")).to_have_text(
        re.compile(r"^Opted out on "), timeout=30_000
    )
    assert "asked in writing" in asked[0] and "records the client's request" in asked[0]
    expect(drawer.get_by_role("button", name="Record request to resume outreach")).to_be_visible()
    if viewport:
        _no_sideways_scroll(page)
    person.refresh_from_db()
    assert (person.timezone, person.outreach_opt_out) == ("Africa/Accra", True)
