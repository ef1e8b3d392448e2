"""Django's upload handler for every multipart file: straight to a temporary file on disk (never
held in memory), hashed with SHA-256 while it arrives so the bytes are not read again for it.

With the file system storage the temporary file lies in `var/files/.incoming/`, on the same file
system as the stored files, so storing it is a hard link rather than a copy."""

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler


def _temporary_folder() -> str | None:
    if settings.FILES_URL:
        return settings.FILE_UPLOAD_TEMP_DIR
    folder = Path(settings.FILES_DIR) / ".incoming"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


class HashedUpload(TemporaryUploadedFile):
    sha256: str = ""

    def __init__(
        self,
        name: str,
        content_type: str | None,
        size: int | None,
        charset: str | None,
        content_type_extra: dict[str, bytes] | None = None,
    ) -> None:
        # TemporaryUploadedFile's own, with the folder chosen above (its suffix: ".upload").
        # The file lives as long as the upload (closed, and so removed, with it).
        file = tempfile.NamedTemporaryFile(suffix=".upload", dir=_temporary_folder())  # noqa: SIM115
        UploadedFile.__init__(self, file, name, content_type, size, charset, content_type_extra)


class HashingUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, *args: Any, **kwargs: Any) -> None:
        # TemporaryFileUploadHandler.new_file, with the file class that carries the digest.
        super(TemporaryFileUploadHandler, self).new_file(*args, **kwargs)
        self.file = HashedUpload(
            self.file_name or "", self.content_type, 0, self.charset, self.content_type_extra
        )
        self.digest = hashlib.sha256()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.digest.update(raw_data)
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size: int) -> Any:
        file = super().file_complete(file_size)
        if isinstance(file, HashedUpload):
            file.sha256 = self.digest.hexdigest()
        return file
