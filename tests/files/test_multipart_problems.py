"""A multipart body the parser cannot take (too many fields or files, no boundary, a part's
headers too large, a broken base64 part) is a 400 problem+json that says what is wrong with
it, not a bare "Bad request.", and stores nothing."""

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from clientdesk.clients.models import Client
from clientdesk.files.models import StoredFile
from tests.files.conftest import png_bytes

pytestmark = pytest.mark.django_db

PORTAL = "/portal/api/v1/files"


@pytest.fixture
def portal(portal_for: Callable[[Client], APIClient], client_obj: Client) -> APIClient:
    return portal_for(client_obj)


def raw(api: APIClient, body: bytes, content_type: str) -> Any:
    return api.generic("POST", PORTAL, body, content_type=content_type)


def part(headers: bytes, data: bytes, boundary: bytes = b"x") -> bytes:
    return b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"


FILE_HEADERS = b'Content-Disposition: form-data; name="file"; filename="a.png"'


def problem(response: Any) -> str:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert detail != "Bad request."
    return detail


def test_too_many_fields(portal: APIClient, settings: Any) -> None:
    fields: dict[str, Any] = {
        f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)
    }
    fields["file"] = SimpleUploadedFile("a.png", png_bytes())
    detail = problem(portal.post(PORTAL, fields, format="multipart"))
    assert "fields" in detail
    assert f"{settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,}" in detail
    assert StoredFile.objects.count() == 0


def test_too_many_files(portal: APIClient, settings: Any) -> None:
    files = {
        f"g{i}": SimpleUploadedFile(f"b{i}.png", png_bytes())
        for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)
    }
    detail = problem(portal.post(PORTAL, files, format="multipart"))
    assert "files" in detail
    assert f"{settings.DATA_UPLOAD_MAX_NUMBER_FILES:,}" in detail
    assert StoredFile.objects.count() == 0


def test_no_boundary(portal: APIClient) -> None:
    detail = problem(raw(portal, part(FILE_HEADERS, png_bytes()), "multipart/form-data"))
    assert "boundary" in detail
    assert StoredFile.objects.count() == 0


def test_a_part_with_huge_headers(portal: APIClient) -> None:
    headers = FILE_HEADERS + b"\r\nX-Padding: " + b"a" * 200_000
    body = part(headers, png_bytes()) + b"--x--\r\n"
    detail = problem(raw(portal, body, "multipart/form-data; boundary=x"))
    assert "header" in detail
    assert StoredFile.objects.count() == 0


def test_a_broken_base64_part(portal: APIClient) -> None:
    headers = FILE_HEADERS + b"\r\nContent-Transfer-Encoding: base64"
    body = part(headers, b"!!!not base64!!!") + b"--x--\r\n"
    detail = problem(raw(portal, body, "multipart/form-data; boundary=x"))
    assert "base64" in detail
    assert StoredFile.objects.count() == 0
