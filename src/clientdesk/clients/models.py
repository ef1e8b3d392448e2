"""The business's clients, the people Clientdesk sends messages to."""

import uuid

from django.db import models

from clientdesk.clients.search_index import cut_search_text
from clientdesk.clients.validators import (
    validate_attributes,
    validate_external_id,
    validate_language,
    validate_phone,
)
from clientdesk.core.text import fold
from clientdesk.core.zones import zone_name_validate


class Client(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    external_id = models.CharField(
        max_length=64,
        unique=True,
        validators=[validate_external_id],
        help_text="The business's own id for this client.",
    )
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=32, blank=True, validators=[validate_phone])
    language = models.CharField(max_length=8, default="en", validators=[validate_language])
    attributes = models.JSONField(default=dict, blank=True, validators=[validate_attributes])
    timezone = models.CharField(
        "time zone",
        max_length=64,
        blank=True,
        validators=[zone_name_validate],
        help_text="IANA name (e.g. Europe/Berlin) of the client's local time, for scheduled "
        "broadcasts and quiet hours; empty: the outreach default zone.",
    )
    # Consent to outreach (broadcasts of category outreach); service messages always go. Only
    # the client, or staff acting on the client's written request, change it
    # (`client.consent_changed` in the ledger).
    outreach_opt_out = models.BooleanField(
        default=False, help_text="The client asked not to receive outreach."
    )
    outreach_opt_out_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Derived columns, kept by `clients/services.py` (through `Client.refresh_derived()`):
    # accent- and case-folded text for search (indexed per database, see migrations) and a
    # folded sort key.
    search_text = models.TextField(editable=False, default="")
    sort_name = models.CharField(max_length=210, editable=False, default="")
    is_active = models.BooleanField(
        default=True,
        help_text="A deactivated client keeps their history but gets no new messages, and "
        "their portal sessions end.",
    )
    deactivated_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_name", "id"]
        indexes = [models.Index(fields=["sort_name", "id"], name="clients_sort_idx")]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    def refresh_derived(self) -> None:
        digits = "".join(ch for ch in self.phone if ch.isdigit())
        fields = [self.first_name, self.last_name, self.email, self.phone, digits, self.external_id]
        # Cut (never for real data) so the walk index can hold it (clients/search_index.py).
        self.search_text = cut_search_text(fold(" ".join(fields)))
        self.sort_name = fold(f"{self.last_name} {self.first_name}")[:210]
