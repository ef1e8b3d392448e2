"""docs/PORTAL.md's backend example, run as written against a real server."""

import re
from pathlib import Path

import httpx
import pytest

from clientdesk.accounts.services import api_token_create
from tests.servers import InProcessServer

pytestmark = pytest.mark.django_db(transaction=True)
DOC = Path(__file__).resolve().parents[2] / "docs" / "PORTAL.md"


def test_the_documented_backend_mints_a_session_that_opens_the_inbox(
    integration, client_obj
) -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    server = InProcessServer()
    try:
        token = api_token_create(user=integration)[1]
        source = code.group(1)
        source = source.replace('"https://clientdesk.example"', repr(server.url))
        source = source.replace('"cd_..."', repr(token))
        namespace: dict = {}
        exec(compile(source, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
        session = namespace["portal_session_for"](client_obj.external_id)
        assert session["client_id"] == str(client_obj.id)
        inbox = httpx.get(
            f"{server.url}/portal/api/v1/messages",
            headers={"Authorization": f"Bearer {session['token']}"},
        )
        assert inbox.status_code == 200
        assert set(inbox.json()) == {"items", "unread_count", "next", "last_event_id"}
    finally:
        server.stop()
