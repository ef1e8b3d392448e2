"""The Messages page's Export button in a browser: the file it downloads is the one the ledger
records (via `ui`, completed, same rows and SHA-256)."""

import hashlib
import time
from pathlib import Path

from clientdesk.audit.models import AuditEntry, AuditRecord
from tests.sending import write_texts


def test_the_export_button_downloads_what_the_ledger_records(
    page, login, make_staff, make_client, agent_user, tmp_path
):
    client = make_client()
    write_texts(
        agent_user,
        client,
        (
            f'=HYPERLINK("http://evil.example","{n}")' if n % 2 else f"Hello {n}"
            for n in range(5000)
        ),
    )
    login(make_staff("Manager"))
    page.goto("/messages/")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export", exact=True).click()
    saved = tmp_path / "export.csv"
    download.value.save_as(saved)
    data = Path(saved).read_bytes()
    assert data.startswith(b"id,created_at,")
    assert data.count(b"\r\n") == 5001
    assert b",\"'=HYPERLINK(" in data
    deadline = time.monotonic() + 30
    while True:
        records = [
            r.data
            for model in (AuditEntry, AuditRecord)
            for r in model.objects.filter(action="messages.exported")
        ]
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(records) == 1, records
    (record,) = records
    assert (record["via"], record["outcome"], record["error"]) == ("ui", "completed", None)
    assert record["rows"] == 5000 and record["bytes"] == len(data)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
