"""The upload and download APIs, staff and portal: each accepted type, each refused kind, hostile
names, other users' and clients' ids, byte ranges, and the answers' safety headers."""

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.files.models import StoredFile
from clientdesk.files.services import file_bind, file_store
from tests.files.conftest import SAMPLES, pdf_bytes, png_bytes, post_file, upload

pytestmark = pytest.mark.django_db

STAFF = "/api/v1/files"
PORTAL = "/portal/api/v1/files"


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)


@pytest.fixture
def portal(portal_for: Callable[[Client], APIClient], client_obj: Client) -> APIClient:
    return portal_for(client_obj)


# --- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_accepted_type_is_stored_and_downloaded_by_staff(kind: str, staff_api) -> None:
    name, make, content_type = SAMPLES[kind]
    data = make()
    created = post_file(staff_api, STAFF, name, data)
    assert created.status_code == 201, created.content
    listing = created.json()
    assert set(listing) == {"id", "name", "size", "content_type", "sha256"}
    assert listing["name"] == name
    assert listing["size"] == len(data)
    assert listing["content_type"] == content_type
    assert listing["sha256"] == hashlib.sha256(data).hexdigest()
    got = staff_api.get(f"{STAFF}/{listing['id']}")
    assert got.status_code == 200
    assert body_of(got) == data
    assert got["Content-Type"].startswith(content_type)
    assert got["Content-Length"] == str(len(data))
    assert got["Content-Disposition"].startswith("attachment;")
    assert got["X-Content-Type-Options"] == "nosniff"
    assert got["Content-Security-Policy"] == "sandbox"
    assert got["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_accepted_type_is_stored_for_a_client_and_read_back(kind: str, portal) -> None:
    name, make, content_type = SAMPLES[kind]
    data = make()
    created = post_file(portal, PORTAL, name, data)
    assert created.status_code == 201, created.content
    assert created.json()["content_type"] == content_type
    got = portal.get(f"{PORTAL}/{created.json()['id']}")
    assert got.status_code == 200
    assert body_of(got) == data


def test_the_sent_content_type_and_a_missing_extension_change_nothing(staff_api) -> None:
    data = png_bytes()
    from django.core.files.uploadedfile import SimpleUploadedFile

    created = staff_api.post(
        STAFF,
        {"file": SimpleUploadedFile("scan from 12.05.2026", data, content_type="text/html")},
        format="multipart",
    )
    assert created.status_code == 201, created.content
    assert created.json()["content_type"] == "image/png"
    assert created.json()["name"] == "scan from 12.05.2026"


def test_the_same_content_twice_is_two_files_and_one_stored_object(staff_api, _files_in_tmp):
    data = pdf_bytes("twice")
    first = post_file(staff_api, STAFF, "a.pdf", data).json()
    second = post_file(staff_api, STAFF, "b.pdf", data).json()
    assert first["id"] != second["id"]
    assert first["sha256"] == second["sha256"]
    stored = [p for p in _files_in_tmp.rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [first["sha256"]]
    assert stored[0].relative_to(_files_in_tmp).as_posix() == (
        f"{first['sha256'][:2]}/{first['sha256'][2:4]}/{first['sha256']}"
    )


# --- refused -----------------------------------------------------------------------------------

ZIP_END = b"PK\x05\x06" + b"\x00" * 18
JAR = b"PK\x03\x04" + b"\0" * 26 + b"META-INF/MANIFEST.MF" + ZIP_END
REFUSED = {
    "html": ("page.txt", b"<!DOCTYPE html><html><script>alert(1)</script></html>", "HTML"),
    "html-no-doctype": ("x.txt", b"  \n<html><body>hi</body></html>", "HTML"),
    "svg": (
        "logo.txt",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "SVG",
    ),
    "svg-with-xml-prolog": (
        "logo.txt",
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>',
        "SVG",
    ),
    "exe": ("setup.pdf", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 120 + b"PE\x00\x00", "Windows"),
    "elf": ("run.txt", b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "ELF"),
    "script": ("run.txt", b"#!/bin/sh\nrm -rf /\n", "script"),
    "gif": ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "GIF"),
    "zip": ("archive.pdf", b"PK\x03\x04\x14\x00" + b"\x00" * 40 + ZIP_END, "ZIP"),
    "pdf-zip-polyglot": ("doc.pdf", pdf_bytes() + b"PK\x03\x04" + b"\x00" * 30 + ZIP_END, "ZIP"),
    "png-jar-polyglot": ("photo.png", png_bytes(extra=JAR), "ZIP"),
    "gifar": ("photo.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;" + JAR, "GIF"),
    "png-html-polyglot": ("photo.png", png_bytes()[:33] + b"<html><script>x</script>", "HTML"),
    "pdf-html-polyglot": ("doc.pdf", b"%PDF-1.4\n<html><script>alert(1)</script>", "HTML"),
    "mismatch-png-named-pdf": ("passport.pdf", png_bytes(), "PNG"),
    "mismatch-pdf-named-exe": ("passport.exe", pdf_bytes(), "PDF"),
    "mismatch-text-named-jpg": ("photo.jpg", b"just words\n", "plain text"),
    "binary": ("data.txt", b"\x00\x01\x02\x03binary", "binary"),
    "invalid-utf8": ("notes.txt", b"caf\xe9 au lait", "UTF-8"),
    "nul-in-text": ("notes.txt", b"hello\x00world", "binary"),
    "escape-in-text": ("notes.txt", b"hello \x1b[31mred\x1b[0m\n", "control characters"),
}


@pytest.mark.parametrize("kind", sorted(REFUSED))
@pytest.mark.parametrize("side", ["staff", "portal"])
def test_each_refused_kind_is_422_naming_what_it_is(kind: str, side: str, staff_api, portal):
    name, data, named = REFUSED[kind]
    api, url = (staff_api, STAFF) if side == "staff" else (portal, PORTAL)
    body = problem(post_file(api, url, name, data), 422)
    assert body["type"].endswith("/file-type-refused")
    assert named.lower() in body["detail"].lower(), body["detail"]
    assert body["detected_type"]
    assert not StoredFile.objects.exists()


def test_an_empty_file_is_422(staff_api) -> None:
    body = problem(post_file(staff_api, STAFF, "empty.txt", b""), 422)
    assert body["type"].endswith("/file-empty")


def test_no_file_field_is_422(staff_api) -> None:
    body = problem(staff_api.post(STAFF, {"other": "x"}, format="multipart"), 422)
    assert "file" in body["errors"]


def test_json_instead_of_multipart_is_415(staff_api) -> None:
    problem(staff_api.post(STAFF, {"file": "x"}, format="json"), 415)


@override_settings(FILES_MAX_BYTES=1024)
def test_a_file_over_the_limit_is_413(staff_api, portal) -> None:
    for api, url in ((staff_api, STAFF), (portal, PORTAL)):
        body = problem(post_file(api, url, "big.txt", b"a" * 1025), 413)
        assert body["type"].endswith("/file-too-large")
        assert body["max_bytes"] == 1024
        assert post_file(api, url, "fits.txt", b"a" * 1024).status_code == 201


def test_a_body_announced_over_the_limit_is_413_before_it_is_read(staff_api) -> None:
    response = staff_api.generic(
        "POST",
        STAFF,
        b"",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(11 * 1024 * 1024),
    )
    problem(response, 413)


# --- names -------------------------------------------------------------------------------------

NAMES = {
    "../../etc/passwd.txt": "passwd.txt",
    "..\\..\\windows\\notes.txt": "notes.txt",
    "no\x00tes.txt": "notes.txt",
    "re\u202eport\u202c.txt": "report.txt",
    "\u2066a\u2069b\u200f.txt": "ab.txt",
    "line\nbreak\r.txt": "linebreak.txt",
    "  ..  ": "file",
    "Zoë Ångström — résumé.txt": "Zoë Ångström — résumé.txt",
}


@pytest.mark.parametrize("raw", sorted(NAMES), ids=lambda n: repr(n)[:30])
def test_hostile_names_are_cleaned(raw: str, staff_api) -> None:
    created = post_file(staff_api, STAFF, raw, b"words\n")
    assert created.status_code == 201, created.content
    assert created.json()["name"] == NAMES[raw]


def test_a_10_kb_name_is_cut_to_255_keeping_its_extension(staff_api) -> None:
    created = post_file(staff_api, STAFF, "x" * 10_000 + ".pdf", pdf_bytes())
    assert created.status_code == 201, created.content
    name = created.json()["name"]
    assert len(name) == 255
    assert name.endswith(".pdf")


def test_the_download_names_the_file_in_rfc_6266_form(staff_api, agent: User) -> None:
    # Through the service: a test client's multipart framing cannot carry a quote in a name.
    stored = file_store(upload=upload('Zoë "final"; 100%.txt', b"words\n"), user=agent)
    header = staff_api.get(f"{STAFF}/{stored.pk}")["Content-Disposition"]
    assert header == (
        'attachment; filename="Zo_ _final__ 100_.txt"; '
        "filename*=UTF-8''Zo%C3%AB%20%22final%22%3B%20100%25.txt"
    )


# --- who may download --------------------------------------------------------------------------


def test_a_staff_upload_is_the_uploaders_alone_until_bound(
    staff_api, make_user: Callable[..., User], api_for, client_obj: Client
) -> None:
    created = post_file(staff_api, STAFF, "a.pdf", pdf_bytes()).json()
    other = api_for(make_user("Manager"))
    problem(other.get(f"{STAFF}/{created['id']}"), 404)
    file_bind(file=StoredFile.objects.get(pk=created["id"]), client=client_obj)
    assert other.get(f"{STAFF}/{created['id']}").status_code == 200
    viewer = api_for(make_user("Viewer"))
    assert viewer.get(f"{STAFF}/{created['id']}").status_code == 200


def test_a_role_without_upload_may_not_upload(make_user, api_for) -> None:
    viewer = api_for(make_user("Viewer"))
    problem(post_file(viewer, STAFF, "a.txt", b"x\n"), 403)


def test_unknown_and_other_clients_ids_are_404_alike(
    portal_for, make_client: Callable[..., Client], staff_api
) -> None:
    alice, bob = make_client(), make_client()
    alice_api, bob_api = portal_for(alice), portal_for(bob)
    mine = post_file(alice_api, PORTAL, "a.txt", b"alice's\n").json()
    assert alice_api.get(f"{PORTAL}/{mine['id']}").status_code == 200
    other = problem(bob_api.get(f"{PORTAL}/{mine['id']}"), 404)
    unknown = problem(bob_api.get(f"{PORTAL}/{uuid.uuid4()}"), 404)
    assert other["detail"] == unknown["detail"]
    # A staff upload bound to Alice is hers to read, not Bob's.
    staff = post_file(staff_api, STAFF, "for-alice.pdf", pdf_bytes()).json()
    problem(alice_api.get(f"{PORTAL}/{staff['id']}"), 404)
    file_bind(file=StoredFile.objects.get(pk=staff["id"]), client=alice)
    assert alice_api.get(f"{PORTAL}/{staff['id']}").status_code == 200
    problem(bob_api.get(f"{PORTAL}/{staff['id']}"), 404)


def test_tokens_do_not_cross_between_staff_and_portal(staff_api, portal) -> None:
    mine = post_file(portal, PORTAL, "a.txt", b"x\n").json()
    assert portal.get(f"{STAFF}/{mine['id']}").status_code == 401
    staff = post_file(staff_api, STAFF, "b.txt", b"y\n").json()
    assert staff_api.get(f"{PORTAL}/{staff['id']}").status_code == 401
    assert post_file(portal, STAFF, "c.txt", b"z\n").status_code == 401
    assert post_file(staff_api, PORTAL, "c.txt", b"z\n").status_code == 401


def test_a_malformed_id_is_404(staff_api) -> None:
    problem(staff_api.get(f"{STAFF}/not-a-uuid"), 404)
    problem(staff_api.get(f"{STAFF}/{'1' * 5000}"), 404)


# --- ranges ------------------------------------------------------------------------------------


@pytest.fixture
def text_file(staff_api) -> tuple[str, bytes]:
    data = bytes(range(48, 58)) * 100 + b"\n"  # 1,001 bytes of digits
    created = post_file(staff_api, STAFF, "digits.txt", data)
    assert created.status_code == 201
    return f"{STAFF}/{created.json()['id']}", data


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 1000),
        ("bytes=-5", 996, 1000),
        ("bytes=500-5000", 500, 1000),
        ("bytes=-5000", 0, 1000),
        ("bytes=1000-1000", 1000, 1000),
    ],
)
def test_one_range_is_206(text_file, staff_api, header: str, first: int, last: int) -> None:
    url, data = text_file
    got = staff_api.get(url, HTTP_RANGE=header)
    assert got.status_code == 206
    assert got["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
    assert got["Content-Length"] == str(last - first + 1)
    assert body_of(got) == data[first : last + 1]


@pytest.mark.parametrize("header", ["bytes=1001-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_past_the_end_is_416(text_file, staff_api, header: str) -> None:
    url, data = text_file
    got = staff_api.get(url, HTTP_RANGE=header)
    problem(got, 416)
    assert got["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.parametrize(
    "header", ["bytes=0-1,5-6", "lines=0-5", "bytes=9-3", "bytes=abc", "bytes=" + "9" * 40]
)
def test_ranges_not_served_are_answered_whole(text_file, staff_api, header: str) -> None:
    url, data = text_file
    got = staff_api.get(url, HTTP_RANGE=header)
    assert got.status_code == 200
    assert body_of(got) == data


def test_if_range_with_another_tag_is_answered_whole(text_file, staff_api) -> None:
    url, data = text_file
    got = staff_api.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"something-else"')
    assert got.status_code == 200
    etag = got["ETag"]
    again = staff_api.get(url, HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag)
    assert again.status_code == 206
    assert body_of(again) == data[:10]


def test_any_accept_header_gets_the_file(text_file, staff_api) -> None:
    url, data = text_file
    got = staff_api.get(url, HTTP_ACCEPT="application/pdf")
    assert got.status_code == 200
    assert body_of(got) == data


# --- hostile multipart -------------------------------------------------------------------------


def _raw(api: APIClient, disposition: bytes, data: bytes, url: str = STAFF) -> Any:
    boundary = b"----clientdesk-test-boundary"
    body = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; ' + disposition + b"\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
        b"--" + boundary + b"--\r\n"
    )
    return api.generic(
        "POST", url, body, content_type=f"multipart/form-data; boundary={boundary.decode()}"
    )


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        (b'filename="C:\\\\Users\\\\zoe\\\\scan.txt"', "scan.txt"),
        # Names Django's parser cannot read as a file name: the part is no file, a clear 422.
        (b'filename="a\xffb.txt"', 422),
        (b"filename*=UTF-8''r%C3%A9sum%C3%A9%E2%80%AE.txt", "résumé.txt"),
        (b"filename*=UTF-8''a%00b.txt", "ab.txt"),
        (b'filename="quote\\"d;semi.txt"', None),
        (b'filename=""', 422),
        (b'filename=".."', 422),
    ],
)
def test_names_from_raw_multipart_are_cleaned(staff_api, disposition: bytes, expected) -> None:
    response = _raw(staff_api, disposition, b"words\n")
    if expected is None:  # whatever the parser made of it: stored cleaned, or refused
        assert response.status_code in (201, 400, 422), response.content
        if response.status_code == 201:
            name = response.json()["name"]
            assert "\x00" not in name and "/" not in name and "\\" not in name
        return
    if expected == 422:
        problem(response, 422)
        assert not StoredFile.objects.exists()
        return
    assert response.status_code == 201, response.content
    assert response.json()["name"] == expected


def test_two_files_in_the_field_are_refused(staff_api) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = staff_api.post(
        STAFF,
        {"file": [SimpleUploadedFile("a.txt", b"a\n"), SimpleUploadedFile("b.txt", b"b\n")]},
        format="multipart",
    )
    problem(response, 422)
    assert not StoredFile.objects.exists()


def test_a_field_without_a_filename_is_not_a_file(staff_api) -> None:
    problem(_raw(staff_api, b"", b"just a form value"), 422)


def test_a_broken_multipart_body_is_a_problem(staff_api) -> None:
    response = staff_api.generic(
        "POST", STAFF, b"--x\r\nnot a part", content_type="multipart/form-data; boundary=x"
    )
    assert response.status_code in (400, 422)
    assert response["Content-Type"] == "application/problem+json"
