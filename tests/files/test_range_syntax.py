"""Range headers outside RFC 9110's syntax (DIGIT is ASCII 0-9 only): digits of other scripts,
which Python's `\\d` and `int()` read as numbers, and other non-ASCII look-alikes, are not
understood, so the whole file is answered, as for any range the server does not understand."""

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from clientdesk.clients.models import Client
from tests.files.conftest import post_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def file_url(portal_for: Callable[[Client], APIClient], client_obj: Client) -> tuple[Any, str]:
    portal = portal_for(client_obj)
    created = post_file(portal, "/portal/api/v1/files", "scan.txt", b"0123456789" * 100)
    assert created.status_code == 201, created.content
    return portal, f"/portal/api/v1/files/{created.json()['id']}"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=\u0661-\u0662",  # Arabic-Indic one and two
        "bytes=\u0967\u0966-",  # Devanagari ten
        "bytes=-\uff15",  # full-width five
        "bytes=\U0001d7ce-\U0001d7cf",  # mathematical bold zero and one
        "bytes=１-２",
    ],
)
def test_a_range_in_digits_of_another_script_is_not_understood(file_url, header: str) -> None:
    portal, url = file_url
    got = portal.get(url, HTTP_RANGE=header)
    assert got.status_code == 200
    assert "Content-Range" not in got
    assert b"".join(got.streaming_content) == b"0123456789" * 100


def test_an_ascii_range_is_still_answered(file_url) -> None:
    portal, url = file_url
    got = portal.get(url, HTTP_RANGE="bytes=1-2")
    assert got.status_code == 206
    assert got["Content-Range"] == "bytes 1-2/1000"
    assert b"".join(got.streaming_content) == b"12"
