"""Staff users and their API tokens."""

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models

from clientdesk.core.zones import zone_name_validate


class User(AbstractUser):
    """A member of staff. Ids exposed outside are UUIDs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    timezone = models.CharField(
        "time zone",
        max_length=64,
        blank=True,
        validators=[zone_name_validate],
        help_text="IANA name (e.g. Europe/Berlin) the staff pages show times in for this user; "
        "empty: their browser's.",
    )

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


class ApiToken(models.Model):
    """A bearer token. Only the SHA-256 of the token is stored; the token itself is shown once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(
        max_length=12, help_text="The token's first characters, to tell it apart."
    )
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class RecoveryCode(models.Model):
    """A one-time code that stands in for the authenticator app at sign-in. Only the SHA-256 of
    the code is stored (the code carries 80 random bits); it is shown once, when made."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes"
    )
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "digest"], name="recovery_code_unique")
        ]

    def __str__(self) -> str:
        return f"recovery code of {self.user_id}"
