"""Racing uploads of the same content (one stored object, every row readable), and uploads of
a content racing the cleanup that removes its last stale row."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from clientdesk.accounts.models import User
from clientdesk.accounts.services import api_token_create
from clientdesk.files.models import StoredBlob, StoredFile
from clientdesk.files.services import file_open, file_store, files_cleanup
from tests.files.conftest import pdf_bytes, upload
from tests.racing import race

pytestmark = pytest.mark.django_db(transaction=True)


def test_eight_racing_uploads_of_one_content(agent: User, _files_in_tmp: Path) -> None:
    data = pdf_bytes("race") * 50
    _, token = api_token_create(user=agent)

    def send(n: int) -> dict:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = api.post("/api/v1/files", {"file": upload(f"r{n}.pdf", data)})
        assert response.status_code == 201, response.content
        return response.json()

    results, errors = race(8, send)
    assert errors == []
    assert len({r["id"] for r in results}) == 8
    assert len({r["sha256"] for r in results}) == 1
    assert StoredFile.objects.count() == 8
    assert StoredBlob.objects.count() == 1
    objects = [p for p in _files_in_tmp.rglob("*") if p.is_file()]
    assert [p.name for p in objects] == [results[0]["sha256"]]  # no temporary file left
    assert objects[0].read_bytes() == data


def test_uploads_racing_the_cleanup_of_the_same_content(agent: User) -> None:
    data = b"contested content\n"
    for round_ in range(5):
        stale = file_store(upload=upload("old.txt", data), user=agent)
        StoredFile.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=2))

        def act(n: int) -> object:
            if n == 0:
                return files_cleanup(now=timezone.now())
            return file_store(upload=upload(f"new{n}.txt", data), user=agent)

        _, errors = race(4, act)
        assert errors == [], (round_, errors)
        assert not StoredFile.objects.filter(pk=stale.pk).exists()
        for row in StoredFile.objects.all():
            with file_open(row) as handle:
                assert handle.read() == data, round_
        StoredFile.objects.all().delete()
