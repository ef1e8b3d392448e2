"""Reads of outreach: the settings, the broadcasts a user may see, their recipients, and the
clients an audience names."""

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import search_terms
from clientdesk.core.errors import NotFound
from clientdesk.messaging.models import Category, Direction, Message
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.outreach.models import Broadcast, BroadcastRecipient, OutreachSettings

# Ids are looked up this many at a time (SQLite binds a bounded number of values).
ID_CHUNK = 5_000
# What a recipient's rendering reads (the search's derived columns are left in the database).
CLIENT_FIELDS = (
    "id",
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "language",
    "attributes",
    "timezone",
    "outreach_opt_out",
    "is_active",
)


def outreach_settings_get() -> OutreachSettings:
    """The one settings row (defaults until an administrator saves them)."""
    settings, _ = OutreachSettings.objects.get_or_create(pk=1)
    return settings


def broadcasts_visible(*, user: User) -> QuerySet[Broadcast]:
    """Newest first: every broadcast for users with *Send a broadcast*, else their own."""
    queryset = Broadcast.objects.select_related("created_by").order_by("-created_at", "-id")
    if user.has_perm(MessagingPermission.SEND_BROADCAST):
        return queryset
    return queryset.filter(created_by=user)


def broadcast_get(*, user: User, broadcast_id: uuid.UUID | str) -> Broadcast:
    """A broadcast `user` may see; NotFound alike for one that does not exist or is hidden."""
    try:
        return broadcasts_visible(user=user).get(pk=broadcast_id)
    except (Broadcast.DoesNotExist, ValueError) as error:
        raise NotFound("No such broadcast.") from error


def broadcast_recipients(
    *, broadcast: Broadcast, status: str | None = None, reason: str | None = None
) -> QuerySet[BroadcastRecipient]:
    queryset = BroadcastRecipient.objects.filter(broadcast=broadcast).order_by("id")
    if status:
        queryset = queryset.filter(status=status)
    if reason:
        queryset = queryset.filter(reason=reason)
    return queryset


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), ID_CHUNK):
        yield values[start : start + ID_CHUNK]


def audience_filter(audience: dict[str, Any]) -> Q:
    """The clients matching every key of a checked audience but its id lists (which
    `audience_clients` looks up in chunks)."""
    condition = Q()
    for term in search_terms(audience.get("search") or ""):
        # The search's own folding and words (clients/selectors.py): every word, anywhere in
        # the name, email, phone or external id.
        condition &= Q(search_text__contains=term)
    if language := audience.get("language"):
        condition &= Q(language=language) | Q(language__startswith=f"{language}-")
    for name, value in (audience.get("attributes") or {}).items():
        condition &= Q(**{f"attributes__{name}": value})
    return condition


def audience_clients(audience: dict[str, Any]) -> Iterator[Client]:
    """Every client of a checked audience (its keys ANDed), in page order per id chunk, reading
    only what rendering needs, a chunk at a time."""
    base = Client.objects.filter(audience_filter(audience)).only(*CLIENT_FIELDS)
    client_ids = audience.get("client_ids")
    external_ids = audience.get("external_ids")
    if client_ids is None and external_ids is None:
        yield from base.order_by("sort_name", "id").iterator(chunk_size=2_000)
        return
    if client_ids is not None:
        wanted = set(external_ids) if external_ids is not None else None
        for chunk in _chunks(client_ids):
            for client in base.filter(pk__in=chunk).order_by("sort_name", "id"):
                if wanted is None or client.external_id in wanted:
                    yield client
        return
    assert external_ids is not None
    for chunk in _chunks(external_ids):
        yield from base.filter(external_id__in=chunk).order_by("sort_name", "id")


def known_client_ids(ids: list[uuid.UUID]) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for chunk in _chunks(ids):
        found.update(Client.objects.filter(pk__in=chunk).values_list("pk", flat=True))
    return found


def known_external_ids(ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(
            Client.objects.filter(external_id__in=chunk).values_list("external_id", flat=True)
        )
    return found


def clients_at_outreach_cap(*, cap: int) -> set[uuid.UUID]:
    """Clients who got `cap` or more outreach messages in the last seven days."""
    since = timezone.now() - timedelta(days=7)
    return set(
        Message.objects.filter(
            category=Category.OUTREACH, direction=Direction.OUT, created_at__gte=since
        )
        .values("client_id")
        .annotate(n=Count("id"))
        .filter(n__gte=cap)
        .values_list("client_id", flat=True)
    )
