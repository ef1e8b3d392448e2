"""Racing uploads against a client's upload limits: many uploads of one client at once are held
to its uploads an hour and its bytes in all (each checked again under the client's lock, so a
racer cannot pass on a count taken before the others were written), and a refused racer leaves
no bytes behind."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from clientdesk.clients.models import Client
from clientdesk.files.models import StoredBlob, StoredFile
from clientdesk.portal.services import portal_link_create, portal_link_redeem
from tests.files.conftest import upload
from tests.racing import race

pytestmark = pytest.mark.django_db(transaction=True)

PORTAL = "/portal/api/v1/files"


def uploader(client: Client) -> Callable[[str, bytes], Any]:
    token = portal_link_redeem(code=portal_link_create(client=client)).token

    def send(name: str, data: bytes) -> Any:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return api.post(PORTAL, {"file": upload(name, data)}, format="multipart")

    return send


def stored_objects(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and ".incoming" not in p.parts]


def test_racing_uploads_keep_to_the_uploads_an_hour(
    make_client: Callable[..., Client], settings: Any, _files_in_tmp: Path
) -> None:
    settings.FILES_CLIENT_UPLOADS_PER_HOUR = 3
    client = make_client()
    send = uploader(client)
    results, errors = race(10, lambda n: send(f"note{n}.txt", f"note {n}\n".encode()))
    assert errors == []
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * 3 + [429] * 7, [r.content for r in results]
    refused = next(r for r in results if r.status_code == 429)
    assert refused["Content-Type"] == "application/problem+json"
    assert int(refused["Retry-After"]) >= 1
    assert StoredFile.objects.filter(client=client).count() == 3
    # Only the accepted contents are kept: a refused racer's bytes went with it.
    kept = {r.json()["sha256"] for r in results if r.status_code == 201}
    assert {p.name for p in stored_objects(_files_in_tmp)} == kept
    assert set(StoredBlob.objects.values_list("sha256", flat=True)) == kept


def test_racing_uploads_keep_to_the_bytes_in_all(
    make_client: Callable[..., Client], settings: Any, _files_in_tmp: Path
) -> None:
    settings.FILES_CLIENT_TOTAL_BYTES = 3 * 1000 + 500
    client = make_client()
    send = uploader(client)
    results, errors = race(8, lambda n: send(f"n{n}.txt", (f"{n}" * 1000)[:999].encode() + b"\n"))
    assert errors == []
    codes = sorted(r.status_code for r in results)
    assert codes == [201] * 3 + [422] * 5, [r.content for r in results]
    total = sum(StoredFile.objects.filter(client=client).values_list("size", flat=True))
    assert total <= settings.FILES_CLIENT_TOTAL_BYTES


def test_a_refused_racer_leaves_the_bytes_another_row_uses(
    make_client: Callable[..., Client], settings: Any, _files_in_tmp: Path
) -> None:
    """The same content from two clients, one of them over its limit: the other's file reads."""
    settings.FILES_CLIENT_UPLOADS_PER_HOUR = 1
    first, second = make_client(), make_client()
    send_first, send_second = uploader(first), uploader(second)
    data = b"the same notes\n"
    assert send_first("a.txt", b"earlier\n").status_code == 201
    results, errors = race(
        2, lambda n: (send_first if n == 0 else send_second)(f"same{n}.txt", data)
    )
    assert errors == []
    assert sorted(r.status_code for r in results) == [201, 429]
    accepted = next(r for r in results if r.status_code == 201).json()
    row = StoredFile.objects.get(pk=accepted["id"])
    assert row.client_id == second.id
    (path,) = [p for p in stored_objects(_files_in_tmp) if p.name == accepted["sha256"]]
    assert path.read_bytes() == data
