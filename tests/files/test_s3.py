"""The same store and download on an S3 bucket (moto's server on loopback, over HTTP): the
object named by the hash, every type, ranges streamed from the bucket, signed links, and the
cleanup removing the object only when no row names it."""

import hashlib
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from django.utils import timezone

from clientdesk.files.models import StoredFile
from clientdesk.files.services import file_bind, file_open, file_signed_url, files_cleanup
from tests.files.conftest import SAMPLES, pdf_bytes, post_file
from tests.files.s3 import CREDENTIALS, moto_server

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    name = f"files-{uuid.uuid4().hex[:12]}"
    s3 = boto3.resource("s3", endpoint_url=s3_endpoint, **_keys())
    s3.create_bucket(Bucket=name)
    settings.FILES_URL = f"s3://{name}/uploads?endpoint_url={s3_endpoint}&region_name=us-east-1"
    return s3.Bucket(name)


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": "us-east-1",
    }


def _keys_in(bucket: Any) -> list[str]:
    return sorted(o.key for o in bucket.objects.all())


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_type_is_stored_in_the_bucket_by_hash(kind, bucket, staff_api, _files_in_tmp):
    name, make, content_type = SAMPLES[kind]
    data = make()
    created = post_file(staff_api, "/api/v1/files", name, data)
    assert created.status_code == 201, created.content
    sha = hashlib.sha256(data).hexdigest()
    assert _keys_in(bucket) == [f"uploads/{sha[:2]}/{sha[2:4]}/{sha}"]
    assert bucket.Object(f"uploads/{sha[:2]}/{sha[2:4]}/{sha}").get()["Body"].read() == data
    assert not _files_in_tmp.exists()  # nothing on the local disk
    got = staff_api.get(f"/api/v1/files/{created.json()['id']}")
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == data
    assert got["Content-Type"].startswith(content_type)


def test_ranges_come_from_the_bucket(bucket, staff_api):
    data = bytes(range(256)) * 4096 + b"end"  # 1 MiB and a bit, so it is not all one chunk
    created = post_file(staff_api, "/api/v1/files", "x.pdf", b"%PDF-1.7\n" + data)
    # A PDF whose body is binary: accepted (a PDF is judged by its header and polyglot checks).
    assert created.status_code == 201, created.content
    full = b"%PDF-1.7\n" + data
    url = f"/api/v1/files/{created.json()['id']}"
    part = staff_api.get(url, HTTP_RANGE="bytes=100000-700000")
    assert part.status_code == 206
    assert b"".join(part.streaming_content) == full[100000:700001]
    tail = staff_api.get(url, HTTP_RANGE="bytes=-3")
    assert b"".join(tail.streaming_content) == b"end"
    assert staff_api.get(url, HTTP_RANGE=f"bytes={len(full)}-").status_code == 416


def test_the_same_content_is_one_object_and_outlives_a_cleaned_row(
    bucket, staff_api, agent, client_obj
):
    data = pdf_bytes("shared")
    first = post_file(staff_api, "/api/v1/files", "a.pdf", data).json()
    second = post_file(staff_api, "/api/v1/files", "b.pdf", data).json()
    assert len(_keys_in(bucket)) == 1
    file_bind(file=StoredFile.objects.get(pk=second["id"]), client=client_obj)
    StoredFile.objects.update(created_at=timezone.now() - timedelta(days=2))
    assert files_cleanup(now=timezone.now()) == 1
    assert len(_keys_in(bucket)) == 1
    with file_open(StoredFile.objects.get(pk=second["id"])) as handle:
        assert handle.read() == data
    StoredFile.objects.update(attached_at=None)
    assert files_cleanup(now=timezone.now()) == 1
    assert _keys_in(bucket) == []
    assert first["sha256"] == second["sha256"]


def test_a_signed_link_reads_from_the_bucket(bucket, staff_api, client):
    created = post_file(staff_api, "/api/v1/files", "a.pdf", pdf_bytes("signed")).json()
    path = file_signed_url(file=StoredFile.objects.get(pk=created["id"]), base_url="")
    got = client.get(path)
    assert got.status_code == 200
    assert b"".join(got.streaming_content) == pdf_bytes("signed")


def test_a_client_upload_goes_to_the_bucket(bucket, portal_for, client_obj):
    api = portal_for(client_obj)
    created = post_file(api, "/portal/api/v1/files", "notes.txt", b"from the client\n")
    assert created.status_code == 201
    got = api.get(f"/portal/api/v1/files/{created.json()['id']}")
    assert b"".join(got.streaming_content) == b"from the client\n"
    assert len(_keys_in(bucket)) == 1
