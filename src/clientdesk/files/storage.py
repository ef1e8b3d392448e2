"""Where the bytes live: Django's storage API, each file under its SHA-256 (`ab/cd/abcd…`),
in `var/files/` or, with `CLIENTDESK_FILES_URL=s3://BUCKET?endpoint_url=…`, an S3 bucket."""

import functools
import os
import posixpath
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage, Storage

CHUNK = 64 * 1024


class HashFileSystemStorage(FileSystemStorage):
    """A file system storage whose names are content hashes: the same name always holds the
    same bytes, so a second write replaces the first atomically (a reader never sees part of
    a file) instead of picking another name."""

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        return name

    def _save(self, name: str, content: File) -> str:
        full = self.path(name)
        folder = os.path.dirname(full)
        os.makedirs(folder, exist_ok=True)
        source = getattr(content, "temporary_file_path", None)
        if source is not None and self._link(source(), full):
            return name
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        try:
            with os.fdopen(descriptor, "wb") as out:
                for chunk in content.chunks(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o640)
            os.replace(temporary, full)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return name

    @staticmethod
    def _link(source: str, full: str) -> bool:
        """An upload already on disk becomes the stored file without a copy (a second name for
        its bytes, renamed into place); False when it lies on another file system."""
        temporary = os.path.join(os.path.dirname(full), f".incoming-{uuid.uuid4().hex}")
        try:
            os.link(source, temporary)
        except OSError:
            return False
        try:
            with open(temporary, "rb") as stored:
                os.fsync(stored.fileno())
            os.chmod(temporary, 0o640)
            os.replace(temporary, full)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return True


def object_name(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _s3_storage(url: str) -> Storage:
    from boto3.s3.transfer import TransferConfig
    from storages.backends.s3 import S3Storage

    parts = urlsplit(url)
    if not parts.netloc:
        raise ImproperlyConfigured("CLIENTDESK_FILES_URL must be s3://BUCKET[?endpoint_url=...]")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    options: dict[str, Any] = {
        "bucket_name": parts.netloc,
        "location": parts.path.strip("/"),
        "file_overwrite": True,
        "default_acl": None,
        "querystring_auth": False,
        # Over this size a download spools to disk, never whole into memory.
        "max_memory_size": 1024 * 1024,
        # One PUT streamed from the file: boto's multipart upload would read each 8 MB part
        # into memory (per upload, per thread), which 20 concurrent uploads turned into 150 MB
        # more per web process. One PUT takes up to 5 GB.
        "transfer_config": TransferConfig(multipart_threshold=4 * 1024**3, use_threads=False),
    }
    for key in ("endpoint_url", "region_name", "addressing_style", "signature_version"):
        if key in query:
            options[key] = query[key]
    return S3Storage(**options)


@functools.lru_cache(maxsize=4)
def _storage(url: str, folder: str) -> Storage:
    if not url:
        return HashFileSystemStorage(location=folder)
    if url.startswith("s3://"):
        return _s3_storage(url)
    raise ImproperlyConfigured("CLIENTDESK_FILES_URL must be empty or s3://BUCKET?...")


def files_storage() -> Storage:
    """The storage the settings name now (tests switch it with `override_settings`)."""
    return _storage(settings.FILES_URL, str(settings.FILES_DIR))


def is_s3(storage: Storage) -> bool:
    return not isinstance(storage, FileSystemStorage)


def read_range(storage: Storage, name: str, start: int, end: int) -> Iterator[bytes]:
    """Bytes `start`..`end` (inclusive) of a stored object, a chunk at a time."""
    if is_s3(storage):
        location = str(getattr(storage, "location", "") or "")
        key = posixpath.join(location, name) if location else name
        bucket = storage.bucket  # type: ignore[attr-defined]
        body = bucket.Object(key).get(Range=f"bytes={start}-{end}")["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()
        return
    handle: IO[bytes]
    with storage.open(name, "rb") as handle:
        handle.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
