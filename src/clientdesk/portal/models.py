"""Portal sessions (short-lived, one client each) and one-time sign-in links."""

import uuid

from django.conf import settings
from django.db import models

from clientdesk.accounts.models import ApiToken
from clientdesk.clients.models import Client
from clientdesk.portal.permissions import PortalPermission


class PortalSession(models.Model):
    """A client's session. The token handed out is a signature over this row's id; the row is
    what revocation acts on (its minting token revoked, its staff user deactivated)."""

    class Via(models.TextChoices):
        API = "api", "Issued through the API"
        LINK = "link", "One-time sign-in link"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="portal_sessions")
    via = models.CharField(max_length=8, choices=Via.choices)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    issued_by_token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = PortalPermission.model_meta()

    def __str__(self) -> str:
        return f"Portal session of {self.client} until {self.expires_at:%H:%M}"


class PortalLink(models.Model):
    """A one-time sign-in code; only its SHA-256 is kept."""

    digest = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Sign-in link for {self.client}"
