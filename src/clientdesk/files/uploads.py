"""Django's upload handler for every multipart file: straight to a temporary file on disk (never
held in memory), hashed with SHA-256 while it arrives so the bytes are not read again for it."""

import hashlib
from typing import Any

from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler


class HashedUpload(TemporaryUploadedFile):
    sha256: str = ""


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
