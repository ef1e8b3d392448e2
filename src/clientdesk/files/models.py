"""Stored files: one row per upload (or per client a file was bound to); the bytes live in the
storage under their SHA-256, shared by every row with the same content."""

import uuid
from typing import Any

from django.conf import settings
from django.db import models

from clientdesk.clients.models import Client
from clientdesk.files.permissions import FilesPermission


class StoredFile(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sha256 = models.CharField(max_length=64, db_index=True, help_text="Hex SHA-256 of the bytes.")
    name = models.CharField(max_length=255, help_text="The uploaded name, cleaned.")
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=100)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    client = models.ForeignKey(
        Client,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The client the file belongs to: its own upload, or a message to it.",
    )
    created_at = models.DateTimeField(db_index=True)
    attached_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was first attached to a message."
    )

    class Meta:
        permissions = FilesPermission.model_meta()
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(attached_at__isnull=True),
                name="files_unattached_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"

    def listing(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "size": self.size,
            "content_type": self.content_type,
            "sha256": self.sha256,
        }


class StoredBlob(models.Model):
    """One row per stored object (content hash): the row an upload and the cleanup both lock,
    so the cleanup never removes bytes that a new upload of the same content counts on."""

    sha256 = models.CharField(primary_key=True, max_length=64)
    size = models.BigIntegerField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.sha256
