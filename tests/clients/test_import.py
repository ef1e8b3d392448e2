"""The import of clients from CSV: the command and the service it shares with the API (create or
update by external_id, per-line errors, chunks, the one ledger record, hostile files)."""

import io
import json
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from clientdesk.audit.models import AuditEntry
from clientdesk.clients.importing import (
    CHUNK_ROWS,
    MAX_COLUMNS,
    MAX_LISTED_ERRORS,
    MAX_RECORD_CHARS,
    ImportRefused,
    ImportTooLarge,
    ImportTruncated,
    clients_import,
)
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_search
from clientdesk.clients.services import client_create, client_update
from tests.servers import ROOT, child_env

pytestmark = pytest.mark.django_db

HEADER = "external_id,first_name,last_name,email,phone,language,timezone,attr:tier\n"


def run(data: bytes | str, *, actor=None, dry_run=False, **kwargs):
    raw = data.encode() if isinstance(data, str) else data
    return clients_import(
        stream=io.BytesIO(raw), actor=actor, via="test", dry_run=dry_run, **kwargs
    )


def imported_records():
    return list(AuditEntry.objects.filter(action="clients.imported").order_by("id"))


def command(path, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_clients", str(path), *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def test_the_command_creates_then_updates_by_external_id_keeping_id_and_history(tmp_path, agent):
    earlier = client_create(external_id="K-1", first_name="Old", actor=agent)
    client_update(actor=agent, client_id=earlier.id, changes={"phone": "+44 20 7946 0958"})
    history = set(
        AuditEntry.objects.filter(object_id=str(earlier.id)).values_list("action", flat=True)
    )
    assert history == {"client.created", "client.changed"}
    path = tmp_path / "clients.csv"
    path.write_text(
        "external_id,first_name,last_name,email,language,timezone,attr:tier\n"
        "K-1,Zoë,Müller,zoe@example.de,de,Europe/Berlin,gold\n"
        "K-2,Ana,Silva,ana@example.pt,pt,Europe/Lisbon,\n"
    )
    report, summary = command(path)
    assert (report["created"], report["updated"], report["errors"]) == (1, 1, [])
    assert "Created 1, updated 1" in summary
    kept = Client.objects.get(external_id="K-1")
    assert kept.id == earlier.id
    assert (kept.first_name, kept.last_name, kept.language) == ("Zoë", "Müller", "de")
    assert kept.timezone == "Europe/Berlin"
    assert kept.attributes == {"tier": "gold"}
    # A column the file leaves out stays as it was; the history is the client's still.
    assert kept.phone == "+44 20 7946 0958"
    assert history <= set(
        AuditEntry.objects.filter(object_id=str(earlier.id)).values_list("action", flat=True)
    )
    new = Client.objects.get(external_id="K-2")
    assert new.sort_name == "silva ana"
    (record,) = imported_records()
    assert record.actor_type == "system"
    assert record.data["created"] == 1 and record.data["updated"] == 1
    assert record.data["complete"] is True
    assert record.data["sha256"] == report["sha256"]

    # The same file again changes nothing and says so.
    again, _ = command(path)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert Client.objects.count() == 2


def test_imported_clients_are_found_by_search_and_updates_move_the_index():
    report = run(
        HEADER
        + "S-1,Zoë,Quintavalle,zq@example.it,,it,,\n"
        + "S-2,Bob,Quist,bq@example.com,+1 555 0100,en,,\n"
    )
    assert report.created == 2
    found = client_search(query="quinta").items
    assert [c.external_id for c in found] == ["S-1"]
    assert [c.external_id for c in client_search(query="zoe").items] == ["S-1"]
    # Words shorter than a trigram take the other index route.
    assert "S-2" in [c.external_id for c in client_search(query="qu").items]
    run("external_id,last_name\nS-1,Marchetti\n")
    assert client_search(query="quintavalle").items == []
    assert [c.external_id for c in client_search(query="marchetti").items] == ["S-1"]


def test_bom_crlf_and_quoted_fields_across_lines():
    data = (
        "\ufeffexternal_id,first_name,last_name,attr:note\r\n"
        'B-1,"Anne, Marie","O\'Brien","line one\r\nline two"\r\n'
        'B-2,"Say ""hi""",Lee,\r\n'
        "B-3,Third,Row,x\r\n"
    ).encode()
    report = run(data)
    assert (report.created, report.errors) == (3, [])
    assert Client.objects.get(external_id="B-1").attributes == {"note": "line one\r\nline two"}
    assert Client.objects.get(external_id="B-2").first_name == 'Say "hi"'


def test_a_bad_row_is_an_error_of_its_line_and_never_stops_the_others():
    data = (
        HEADER.encode()
        + b"E-1,Good,One,,,,,\n"
        + b"E-2,,Nameless,,,,,\n"  # line 3: no first name
        + b'E-3,"multi\nline",Two,not-an-email,,,,\n'  # line 4 (spans 5)
        + b"E-4,Bad\xff\xfeBytes,X,,,,,\n"  # line 6: invalid UTF-8
        + b"E-5,Nul\x00,X,,,,,\n"  # line 7
        + b"E-6,Too,Many,,,,,,,\n"  # line 8: cells
        + b"E-7,Zone,X,,,,Mars/Olympus,\n"  # line 9
        + b"E-8,Lang,X,,,klingon,,\n"  # line 10
        + b"E-9,<script>alert(1)</script>,X,,,,,\n"  # stored as text
        + b"E-10,Good,Two,,,,,\n"
    )
    report = run(data)
    assert report.created == 3
    by_line = {error["line"]: error["errors"] for error in report.errors}
    assert set(by_line) == {3, 4, 6, 7, 8, 9, 10}
    assert "first_name" in by_line[3]
    assert "email" in by_line[4]
    assert by_line[6] == {"first_name": ["This cell is not valid UTF-8 text."]}
    assert "NUL" in by_line[7]["first_name"][0]
    assert "8 cells" not in str(by_line[8]) and "10 cells" in str(by_line[8])
    assert "timezone" in by_line[9]
    assert "language" in by_line[10]
    assert set(Client.objects.values_list("external_id", flat=True)) == {"E-1", "E-9", "E-10"}
    assert Client.objects.get(external_id="E-9").first_name == "<script>alert(1)</script>"
    (record,) = imported_records()
    assert record.data["error_rows"] == 7


def test_duplicate_external_ids_in_one_file_apply_in_order_the_later_row_wins():
    far = "".join(f"F-{n},Filler,{n},,,,,\n" for n in range(CHUNK_ROWS + 5))
    data = (
        HEADER
        + "D-1,First,Version,,,,,gold\n"
        + "D-1,Second,Version,,,,,silver\n"
        + far
        + "D-1,Third,Version,,,,,\n"  # in another chunk
        + "D-1,,Refused,,,,,\n"  # an error: the third stays
    )
    report = run(data)
    assert report.created == 1 + CHUNK_ROWS + 5
    assert report.updated == 2
    assert [e["line"] for e in report.errors] == [CHUNK_ROWS + 10]
    client = Client.objects.get(external_id="D-1")
    assert (client.first_name, client.attributes) == ("Third", {})
    assert Client.objects.filter(external_id="D-1").count() == 1


def test_chunks_are_each_written_and_the_ledger_gets_one_record(django_assert_max_num_queries):
    rows = "".join(
        f"C-{n},Name{n},Last{n},c{n}@example.com,,,,\n"
        if n % 500
        else f"C-{n},Name{n},Last{n},broken,,,,\n"
        for n in range(1, 2 * CHUNK_ROWS + 501)
    )
    # Set-based: a few statements per chunk of 1,000, not one per row.
    with django_assert_max_num_queries(60):
        report = run(HEADER + rows)
    assert report.created == 2 * CHUNK_ROWS + 500 - 5
    assert [e["line"] for e in report.errors] == [501, 1001, 1501, 2001, 2501]
    (record,) = imported_records()
    assert record.data["created"] == report.created
    assert record.data["rows"] == 2 * CHUNK_ROWS + 500


def test_a_dry_run_counts_previews_and_writes_nothing(agent):
    client_create(external_id="P-1", first_name="Kept", actor=agent)
    report = run(
        HEADER + "P-1,Changed,,,,,,\nP-2,New,Client,,,,,vip\nP-3,,,,,,,\n",
        actor=agent,
        dry_run=True,
    )
    assert (report.created, report.updated, report.error_rows) == (1, 1, 1)
    assert [p["action"] for p in report.preview] == ["update", "create"]
    assert report.preview[1]["attributes"] == {"tier": "vip"}
    assert Client.objects.get(external_id="P-1").first_name == "Kept"
    assert not Client.objects.filter(external_id="P-2").exists()
    assert imported_records() == []


def test_the_errors_listed_are_bounded_and_all_counted():
    rows = "".join(f"X-{n},,,,,,,\n" for n in range(MAX_LISTED_ERRORS + 50))
    report = run(HEADER + rows).as_dict()
    assert len(report["errors"]) == MAX_LISTED_ERRORS
    assert report["error_rows"] == MAX_LISTED_ERRORS + 50
    assert report["errors_truncated"] is True


def test_a_row_over_the_length_limit_is_an_error_and_the_next_row_is_read():
    huge = "x" * (MAX_RECORD_CHARS + 10)
    unclosed = '"' + "y\n" * (MAX_RECORD_CHARS // 2)
    data = (
        "external_id,first_name\n"
        f"L-1,{huge}\n"
        "L-2,After\n"
        f"L-3,{unclosed}\n"  # a quote never closed: the row runs on until the limit
        "L-4,Later\n"
    )
    report = run(data)
    assert Client.objects.filter(external_id="L-2").exists()
    assert report.errors[0] == {
        "line": 2,
        "errors": {"non_field_errors": [f"The row is over {MAX_RECORD_CHARS:,} characters."]},
    }
    assert report.errors[1]["line"] == 4
    assert not Client.objects.filter(external_id__in=["L-1", "L-3"]).exists()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"first_name,last_name\nA,B\n", "external_id column is required"),
        (b"external_id,first_name,colour\nA,B,red\n", "'colour' is not a column"),
        (b"external_id,first_name,first_name\nA,B,C\n", "repeated column"),
        (b"external_id,attr:bad name\n", "attribute name"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not valid UTF-8"),
        (",".join(f"c{n}" for n in range(10_000)).encode() + b"\n", "10,000 columns"),
        (b"x" * (MAX_RECORD_CHARS + 5), "header row cannot be read"),
    ],
)
def test_a_file_that_cannot_be_used_is_refused_and_nothing_is_written(data, words):
    with pytest.raises(ImportRefused) as refused:
        run(data)
    assert words in refused.value.detail
    assert Client.objects.count() == 0
    assert imported_records() == []


def test_too_many_columns_names_the_limit():
    header = "external_id," + ",".join(f"attr:a{n}" for n in range(MAX_COLUMNS)) + "\n"
    with pytest.raises(ImportRefused, match=f"at most {MAX_COLUMNS}"):
        run(header)


def test_a_file_over_the_limit_stops_while_read_and_records_what_was_written():
    rows = "".join(f"T-{n:05},Name,Last,,,,,{'x' * 80}\n" for n in range(3 * CHUNK_ROWS))
    data = (HEADER + rows).encode()
    with pytest.raises(ImportTooLarge):
        run(data, max_bytes=len(data) * 3 // 4)
    # The chunks read before the limit are written and recorded as an incomplete import.
    (record,) = imported_records()
    assert record.data["complete"] is False
    assert record.data["created"] == Client.objects.count() > 0


def test_a_cut_upload_is_refused_at_its_end():
    data = (HEADER + "U-1,A,B,,,,,\n").encode()
    with pytest.raises(ImportTruncated):
        run(data, expected_bytes=len(data) + 100)
    assert Client.objects.count() == 0


def test_updating_needs_change_permission_and_consent_goes_through_its_writer(make_user, agent):
    from django.contrib.auth.models import Permission

    adder = make_user(role=None)
    adder.user_permissions.add(
        Permission.objects.get(codename="add_client"),
        Permission.objects.get(codename="view_client"),
    )
    client_create(external_id="Q-1", first_name="Existing", actor=agent)
    report = run(
        "external_id,first_name,outreach_opt_out\nQ-1,Changed,\nQ-2,New,\nQ-3,Asked,yes\n",
        actor=adder,
    )
    assert report.created == 1
    assert [e["line"] for e in report.errors] == [2, 4]
    assert "Can change client" in str(report.errors[0])
    assert "Can change client" in str(report.errors[1])
    assert Client.objects.get(external_id="Q-1").first_name == "Existing"

    report = run(
        "external_id,first_name,outreach_opt_out\nQ-1,Existing,true\nQ-3,Asked,yes\n",
        actor=agent,
    )
    assert (report.created, report.updated, report.errors) == (1, 1, [])
    assert set(
        Client.objects.filter(outreach_opt_out=True).values_list("external_id", flat=True)
    ) == {
        "Q-1",
        "Q-3",
    }
    consent = AuditEntry.objects.filter(action="client.consent_changed")
    assert consent.count() == 2
    assert {e.data["via"] for e in consent} == {"import"}
    assert {e.actor_id for e in consent} == {str(agent.pk)}
    # Empty leaves the consent as it is; "no" turns outreach on again.
    run("external_id,outreach_opt_out\nQ-1,\nQ-3,no\n", actor=agent)
    assert Client.objects.get(external_id="Q-1").outreach_opt_out is True
    assert Client.objects.get(external_id="Q-3").outreach_opt_out is False


def test_the_command_exits_2_naming_an_unusable_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,email\nA,a@example.com\n")
    with pytest.raises(CommandError, match="external_id column is required") as stopped:
        command(bad)
    assert stopped.value.returncode == 2
    with pytest.raises(CommandError) as missing:
        command(tmp_path / "missing.csv")
    assert missing.value.returncode == 2


@pytest.mark.django_db(transaction=True)
def test_the_command_in_a_process_reads_stdin_and_prints_the_report(tmp_path):
    data = HEADER + "I-1,Ada,Lovelace,ada@example.com,,en,Europe/London,\nI-2,,,,,,,\n"
    done = subprocess.run(
        [sys.executable, "manage.py", "import_clients", "-"],
        input=data.encode(),
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["created"] == 1
    assert report["errors"][0]["line"] == 3
    assert "\x1b[" not in done.stderr.decode()  # no progress bar into a pipe
    assert Client.objects.get(external_id="I-1").timezone == "Europe/London"


@pytest.mark.django_db(transaction=True)
def test_the_command_shows_a_progress_bar_on_a_terminal(tmp_path):
    import os
    import pty

    path = tmp_path / "many.csv"
    path.write_text(HEADER + "".join(f"R-{n},Row,{n},,,,,\n" for n in range(3 * CHUNK_ROWS)))
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "import_clients", str(path)],
        cwd=ROOT,
        env={**child_env(), "COLUMNS": "120", "TERM": "xterm"},
        stdout=subprocess.PIPE,
        stderr=follower,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        shown += data
    out, _ = process.communicate(timeout=120)
    os.close(leader)
    assert process.returncode == 0
    assert b"Importing" in shown
    assert b"Created 3,000, updated 0" in shown
    assert json.loads(out)["created"] == 3 * CHUNK_ROWS
