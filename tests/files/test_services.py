"""The services docreq's messages build on: picking attachments, binding a file to a client,
signed links, the client's limits, and the cleanup of uploads never attached."""

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import signing
from django.test import override_settings
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core.jobs import jobs_registered
from clientdesk.files.errors import (
    FileQuotaExceeded,
    FileRateLimited,
    UnknownAttachments,
)
from clientdesk.files.models import StoredBlob, StoredFile
from clientdesk.files.services import (
    SIGNED_URL_SALT,
    file_bind,
    file_open,
    file_signed_url,
    file_store,
    files_cleanup,
    files_for_attachment,
)
from tests.files.conftest import pdf_bytes, png_bytes, upload

pytestmark = pytest.mark.django_db


def stored(
    user: User | None = None, client: Client | None = None, data: bytes = b"x\n", name: str = ""
) -> StoredFile:
    return file_store(upload=upload(name or "a.txt", data), user=user, client=client)


# --- attachments -------------------------------------------------------------------------------


def test_a_staff_user_attaches_only_their_own_uploads(
    agent: User, make_user: Callable[..., User], client_obj: Client
) -> None:
    mine = [stored(user=agent, data=f"{n}\n".encode()) for n in range(3)]
    assert files_for_attachment(ids=[str(f.pk) for f in reversed(mine)], user=agent) == list(
        reversed(mine)
    )
    theirs = stored(user=make_user("Manager"))
    clients = stored(client=client_obj)
    for foreign in (theirs, clients):
        with pytest.raises(UnknownAttachments) as refused:
            files_for_attachment(ids=[mine[0].pk, foreign.pk], user=agent)
        assert str(foreign.pk) in refused.value.detail
        assert str(mine[0].pk) not in refused.value.detail


def test_a_client_attaches_only_its_own_uploads(
    agent: User, make_client: Callable[..., Client]
) -> None:
    alice, bob = make_client(), make_client()
    own = stored(client=alice)
    assert files_for_attachment(ids=[own.pk], client=alice) == [own]
    for foreign in (stored(client=bob), file_bind(file=stored(user=agent), client=alice)):
        with pytest.raises(UnknownAttachments):
            files_for_attachment(ids=[foreign.pk], client=alice)


@pytest.mark.parametrize(
    "ids",
    [
        [str(uuid.uuid4())],
        ["not-a-uuid"],
        [None],
        [{"nested": ["x"]}],
        ["\x00"],
    ],
)
def test_unknown_or_malformed_ids_are_refused_by_name(agent: User, ids: list[object]) -> None:
    with pytest.raises(UnknownAttachments) as refused:
        files_for_attachment(ids=ids, user=agent)
    assert refused.value.status == 422
    assert refused.value.extra["errors"]["attachments"]


def test_at_most_five_and_none_twice(agent: User) -> None:
    files = [stored(user=agent, data=f"{n}\n".encode()) for n in range(6)]
    assert len(files_for_attachment(ids=[f.pk for f in files[:5]], user=agent)) == 5
    with pytest.raises(UnknownAttachments, match="At most 5"):
        files_for_attachment(ids=[f.pk for f in files], user=agent)
    with pytest.raises(UnknownAttachments, match="twice"):
        files_for_attachment(ids=[files[0].pk, files[0].pk], user=agent)
    assert files_for_attachment(ids=[], user=agent) == []


# --- binding -----------------------------------------------------------------------------------


def test_bind_takes_an_unbound_file_then_copies_it_for_other_clients(
    agent: User, make_client: Callable[..., Client]
) -> None:
    alice, bob = make_client(), make_client()
    upload_row = stored(user=agent, data=pdf_bytes(), name="p.pdf")
    assert upload_row.attached_at is None
    for_alice = file_bind(file=upload_row, client=alice)
    assert for_alice.pk == upload_row.pk
    assert for_alice.client == alice
    assert for_alice.attached_at is not None
    assert file_bind(file=upload_row, client=alice).pk == upload_row.pk  # again: the same row
    for_bob = file_bind(file=upload_row, client=bob)
    assert for_bob.pk != upload_row.pk
    assert for_bob.client == bob
    assert for_bob.attached_at is not None
    assert (for_bob.sha256, for_bob.name, for_bob.size, for_bob.content_type) == (
        upload_row.sha256,
        upload_row.name,
        upload_row.size,
        upload_row.content_type,
    )
    assert for_bob.uploaded_by == agent
    with file_open(for_bob) as handle:
        assert handle.read() == pdf_bytes()


def test_bind_of_a_clients_own_upload_marks_it_attached(client_obj: Client) -> None:
    own = stored(client=client_obj)
    bound = file_bind(file=own, client=client_obj)
    assert bound.pk == own.pk
    assert bound.attached_at is not None


# --- signed links ------------------------------------------------------------------------------


def test_a_signed_link_downloads_without_credentials(client, agent: User) -> None:
    row = stored(user=agent, data=png_bytes(), name="p.png")
    url = file_signed_url(file=row, base_url="https://desk.example.com/")
    assert url.startswith("https://desk.example.com/files/signed/")
    got = client.get(url.removeprefix("https://desk.example.com"))
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == png_bytes()
    assert got["Content-Disposition"].startswith("attachment;")
    assert got["X-Content-Type-Options"] == "nosniff"
    assert got["Content-Security-Policy"] == "sandbox"
    ranged = client.get(url.removeprefix("https://desk.example.com"), HTTP_RANGE="bytes=0-7")
    assert ranged.status_code == 206
    assert b"".join(ranged.streaming_content) == png_bytes()[:8]


def test_a_signed_link_expires(client, agent: User) -> None:
    row = stored(user=agent)
    path = file_signed_url(file=row, base_url="", expires_in=-1)
    got = client.get(path)
    assert got.status_code == 410
    assert b"expired" in got.content
    assert "Content-Disposition" not in got


def test_a_link_signed_for_an_hour_says_so(agent: User) -> None:
    row = stored(user=agent)
    token = file_signed_url(file=row, base_url="").rsplit("/", 1)[1]
    payload = signing.loads(token, salt=SIGNED_URL_SALT)
    assert abs(payload["e"] - (timezone.now() + timedelta(hours=1)).timestamp()) < 5


def test_an_altered_signed_link_is_refused(client, agent: User) -> None:
    row, other = stored(user=agent), stored(user=agent, data=b"other\n")
    token = file_signed_url(file=row, base_url="").rsplit("/", 1)[1]
    value, _, signature = token.rpartition(":")
    forged_payload = signing.dumps({"f": str(other.pk), "e": 2**40}, salt=SIGNED_URL_SALT)
    forged = forged_payload.rpartition(":")[0] + ":" + signature
    wrong_salt = signing.dumps({"f": str(row.pk), "e": 2**40}, salt="another")
    for bad in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        forged,
        wrong_salt,
        "garbage",
        value,
        "x" * 5000,
    ):
        got = client.get(f"/files/signed/{bad}")
        assert got.status_code == 404, bad
        assert "Content-Disposition" not in got
    assert client.post(f"/files/signed/{token}").status_code == 405


def test_a_signed_link_of_a_removed_file_is_refused(client, agent: User) -> None:
    row = stored(user=agent)
    path = file_signed_url(file=row, base_url="")
    StoredFile.objects.filter(pk=row.pk).delete()
    assert client.get(path).status_code == 404


# --- a client's limits -------------------------------------------------------------------------


@override_settings(FILES_CLIENT_UPLOADS_PER_HOUR=3)
def test_a_client_uploads_so_many_an_hour(client_obj: Client, portal_for) -> None:
    api = portal_for(client_obj)
    for n in range(3):
        sent = api.post("/portal/api/v1/files", {"file": upload("a.txt", b"%d\n" % n)})
        assert sent.status_code == 201
    refused = api.post("/portal/api/v1/files", {"file": upload("a.txt", b"more\n")})
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused["Retry-After"]) <= 3601
    StoredFile.objects.update(created_at=timezone.now() - timedelta(hours=1, seconds=1))
    with pytest.raises(FileRateLimited):
        for n in range(4):
            stored(client=client_obj, data=b"again %d\n" % n)


@override_settings(FILES_CLIENT_TOTAL_BYTES=100)
def test_a_clients_uploads_hold_so_much_in_all(
    client_obj: Client, make_client: Callable[..., Client], agent: User
) -> None:
    stored(client=client_obj, data=b"a" * 60)
    with pytest.raises(FileQuotaExceeded) as refused:
        stored(client=client_obj, data=b"b" * 41)
    assert refused.value.status == 422
    stored(client=client_obj, data=b"c" * 40)
    stored(client=make_client(), data=b"d" * 100)  # another client's own allowance
    stored(user=agent, data=b"e" * 1000)  # staff uploads are not the client's


# --- cleanup -----------------------------------------------------------------------------------


def _age(row: StoredFile, hours: float) -> None:
    StoredFile.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(hours=hours))


def _object(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256[2:4] / sha256


def test_cleanup_removes_unattached_uploads_after_a_day(
    agent: User, client_obj: Client, _files_in_tmp: Path
) -> None:
    stale = stored(user=agent, data=b"stale\n")
    young = stored(user=agent, data=b"young\n")
    attached = file_bind(file=stored(user=agent, data=b"kept\n"), client=client_obj)
    shared_stale = stored(user=agent, data=b"shared\n")
    shared_kept = file_bind(file=stored(user=agent, data=b"shared\n"), client=client_obj)
    for row in (stale, attached, shared_stale, shared_kept):
        _age(row, 25)
    _age(young, 23)
    assert files_cleanup(now=timezone.now()) == 2
    left = set(StoredFile.objects.values_list("pk", flat=True))
    assert left == {young.pk, attached.pk, shared_kept.pk}
    assert not _object(_files_in_tmp, stale.sha256).exists()
    assert not StoredBlob.objects.filter(sha256=stale.sha256).exists()
    # The bytes of a hash another row still names stay.
    assert _object(_files_in_tmp, shared_kept.sha256).exists()
    assert _object(_files_in_tmp, young.sha256).exists()
    assert _object(_files_in_tmp, attached.sha256).exists()
    assert files_cleanup(now=timezone.now()) == 0


def test_cleanup_is_a_worker_job(agent: User, _files_in_tmp: Path) -> None:
    (job,) = [j for j in jobs_registered() if j.name == "files.cleanup"]
    row = stored(user=agent, data=b"old\n")
    _age(row, 48)
    assert job.run(timezone.now()) is None
    assert not StoredFile.objects.filter(pk=row.pk).exists()
    assert not _object(_files_in_tmp, row.sha256).exists()


def test_an_upload_of_content_cleaned_away_is_stored_again(agent: User, _files_in_tmp: Path):
    row = stored(user=agent, data=b"back again\n")
    _age(row, 48)
    files_cleanup(now=timezone.now())
    again = stored(user=agent, data=b"back again\n")
    with file_open(again) as handle:
        assert handle.read() == b"back again\n"
