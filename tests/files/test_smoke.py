import hashlib

import pytest

from tests.files.conftest import SAMPLES, post_file

pytestmark = pytest.mark.django_db


def test_staff_upload_and_download(staff_api) -> None:
    name, make, content_type = SAMPLES["pdf"]
    data = make()
    created = post_file(staff_api, "/api/v1/files", name, data)
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["content_type"] == content_type
    got = staff_api.get(f"/api/v1/files/{body['id']}")
    assert got.status_code == 200, got.content
    assert b"".join(got.streaming_content) == data
