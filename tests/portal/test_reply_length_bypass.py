"""A reply that carries files may have no text, but not more text than any reply: a blank body
(spaces, line breaks, the information separators Python counts as white space) past the length
limit is refused with files as without them, and nothing is written."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from clientdesk.clients.models import Client
from clientdesk.messaging.models import Direction, Message
from tests.files.conftest import png_bytes, post_file
from tests.portal.conftest import reply

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _files_in_tmp(settings: Any, tmp_path: Path) -> None:
    settings.FILES_URL = ""
    settings.FILES_DIR = tmp_path / "files"
    settings.FILES_CLAMD_SOCKET = ""


@pytest.fixture
def portal(portal_for: Callable[[Client], APIClient], client_obj: Client) -> APIClient:
    return portal_for(client_obj)


def uploaded(portal: APIClient) -> str:
    created = post_file(portal, "/portal/api/v1/files", "scan.png", png_bytes())
    assert created.status_code == 201, created.content
    return str(created.json()["id"])


@pytest.mark.parametrize("blank", [" ", "\n", "\u2028", "\x1c\x1d\x1e\x1f", "\u3000"])
def test_a_blank_body_over_the_limit_is_refused_with_files(
    portal: APIClient, settings: Any, blank: str
) -> None:
    body = blank * (settings.MESSAGE_MAX_LENGTH // len(blank) + 1)
    answer = reply(portal, body, attachments=[uploaded(portal)])
    assert answer.status_code == 422, answer.content
    assert answer["Content-Type"] == "application/problem+json"
    assert f"{settings.MESSAGE_MAX_LENGTH:,}" in answer.json()["detail"]
    assert not Message.objects.filter(direction=Direction.IN).exists()


def test_a_blank_body_within_the_limit_goes_with_files(portal: APIClient) -> None:
    answer = reply(portal, "  \n", attachments=[uploaded(portal)])
    assert answer.status_code == 201, answer.content
    assert len(answer.json()["attachments"]) == 1


def test_no_text_and_no_files_is_still_refused(portal: APIClient) -> None:
    answer = reply(portal, "   ")
    assert answer.status_code == 422, answer.content
