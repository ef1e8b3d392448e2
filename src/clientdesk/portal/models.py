"""Portal sessions (short-lived, one client each), one-time sign-in links, the requests for a
link by e-mail (for their rate limits) and the leases of open event streams."""

import uuid

from django.conf import settings
from django.db import models

from clientdesk.accounts.models import ApiToken
from clientdesk.clients.models import Client
from clientdesk.portal.permissions import PortalPermission


class PortalSession(models.Model):
    """A client's session. The token handed out is a signature over this row's id; the row is
    what revocation acts on (its minting token revoked, its staff user deactivated, the client
    signed out or deactivated). A refresh moves `expires_at` on, never past `created_at` (the
    sign-in) plus `PORTAL_SESSION_MAX_HOURS`."""

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
    # Set when the client is deactivated: the link never works again, whatever follows.
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Sign-in link for {self.client}"


class PortalLinkRequest(models.Model):
    """One request for a sign-in link by e-mail, known address or not, kept for the rate limits
    (per address and per network address) and pruned after the longest window."""

    email_digest = models.CharField(max_length=64)  # SHA-256 of the folded address
    remote_address = models.CharField(max_length=45)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["email_digest", "created_at"], name="portal_linkreq_email_idx"),
            models.Index(fields=["remote_address", "created_at"], name="portal_linkreq_addr_idx"),
            models.Index(fields=["created_at"], name="portal_linkreq_created_idx"),
        ]

    def __str__(self) -> str:
        return f"Sign-in link request at {self.created_at:%H:%M}"


class StreamLease(models.Model):
    """One open event stream, counted against its holder's cap (`client:<id>` or `user:<id>`)
    by every events process alike. The process that serves the stream renews its leases while
    they are open and deletes each when its stream ends; a process that dies leaves leases that
    lapse at `expires_at` and stop counting."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    holder = models.CharField(max_length=80)
    owner = models.CharField(max_length=64)  # the serving process and event loop
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["holder", "expires_at"], name="portal_lease_holder_idx"),
            models.Index(fields=["owner"], name="portal_lease_owner_idx"),
        ]

    def __str__(self) -> str:
        return f"Stream of {self.holder} until {self.expires_at:%H:%M:%S}"
