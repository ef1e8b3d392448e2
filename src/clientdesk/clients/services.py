"""Writes for clients: create, change, and the bulk load of the demo. The derived search fields
are kept here (and by the import, `clients/importing.py`, through `Client.refresh_derived()`);
each write is in the audit ledger with its actor. A change of consent to outreach is delegated to
`clients/consent.py`, its one writer."""

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.timezone import now

from clientdesk.accounts.models import User
from clientdesk.clients.consent import client_consent_change
from clientdesk.clients.hooks import client_deactivated
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_get
from clientdesk.core.errors import Conflict, ValidationFailed
from clientdesk.core.ledger import ledger_record

# What a client's owner may change; the rest is derived or kept by the database.
EDITABLE_FIELDS = (
    "external_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "language",
    "attributes",
    "timezone",
    "is_active",
)
# Changed through `client_consent_change` (its own ledger record, `client.consent_changed`):
# staff change it only on the client's written request.
CONSENT_FIELD = "outreach_opt_out"


def client_check(client: Client) -> Client:
    """Compute the derived fields and check every field; ValidationFailed names the fields."""
    client.refresh_derived()
    try:
        client.full_clean(validate_unique=False)
    except ValidationError as error:
        raise ValidationFailed(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items()),
            errors=error.message_dict,
        ) from error
    return client


class ClientExists(Conflict):
    """Another client has this external id; `existing_id` is that client's, for the boundary to
    show to those who may view clients (an integrator syncing by external id)."""

    def __init__(self, external_id: str, existing_id: uuid.UUID | None) -> None:
        super().__init__(
            f"A client with external_id {external_id!r} already exists.",
            errors={"external_id": ["A client with this external id already exists."]},
        )
        self.existing_id = existing_id


def _external_id_taken(external_id: str) -> ClientExists:
    existing = Client.objects.filter(external_id=external_id).values_list("pk", flat=True).first()
    return ClientExists(external_id, existing)


def client_create(
    *,
    external_id: str,
    first_name: str,
    last_name: str = "",
    email: str = "",
    phone: str = "",
    language: str = "en",
    attributes: dict[str, Any] | None = None,
    timezone: str = "",
    outreach_opt_out: bool = False,
    actor: User | None = None,
    via: str = "staff",
) -> Client:
    """Create a client. `outreach_opt_out=True` records, in the same transaction, the consent
    change the new client asked for (`client_consent_change`, which needs *Can change client*
    of a staff actor)."""
    client = client_check(
        Client(
            external_id=external_id,
            first_name=first_name,
            last_name=last_name,
            email=email,
            phone=phone,
            language=language,
            attributes=attributes or {},
            timezone=timezone,
        )
    )
    try:
        with transaction.atomic():
            client.save(force_insert=True)
            ledger_record(
                actor=actor,
                action="client.created",
                object_type="client",
                object_id=client.id,
                data={field: getattr(client, field) for field in EDITABLE_FIELDS},
            )
            if outreach_opt_out:
                client = client_consent_change(
                    client_id=client.id, opt_out=True, actor=actor, by_client=False, via=via
                )
    except IntegrityError as error:
        taken = _external_id_taken(external_id)
        if taken.existing_id is not None:
            raise taken from error
        raise
    return client


def client_update(
    *, actor: User | None, client_id: uuid.UUID, changes: Mapping[str, Any], via: str = "staff"
) -> Client:
    """Change the given fields; the search fields follow. Records only what really changed.
    `outreach_opt_out` goes through `client_consent_change` in the same transaction (`via`
    names the door in its record)."""
    changes = dict(changes)
    opt_out = changes.pop(CONSENT_FIELD, None)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed(
            f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
            errors={field: ["Cannot be changed."] for field in sorted(unknown)},
        )
    try:
        with transaction.atomic():
            client = Client.objects.select_for_update().get(pk=client_get(client_id=client_id).pk)
            before = {field: getattr(client, field) for field in changes}
            for field, value in changes.items():
                setattr(client, field, value)
            if "is_active" in changes and before["is_active"] != client.is_active:
                # Deactivation ends the client's portal sessions and sign-in links for good
                # (`client_deactivated`, below); each request checks this flag as well.
                client.deactivated_at = None if client.is_active else now()
            client_check(client)
            changed = {f: v for f, v in changes.items() if before[f] != v}
            if changed:
                client.save()
                ledger_record(
                    actor=actor,
                    action="client.changed",
                    object_type="client",
                    object_id=client.id,
                    data={"before": {f: before[f] for f in changed}, "after": changed},
                )
            if opt_out is not None:
                client = client_consent_change(
                    client_id=client.id,
                    opt_out=bool(opt_out),
                    actor=actor,
                    by_client=False,
                    via=via,
                )
            if "is_active" in changed and not client.is_active:
                client_deactivated(client)  # last: it may record a live event
    except IntegrityError as error:
        raise _external_id_taken(str(changes.get("external_id", ""))) from error
    return client


def clients_bulk_create(*, rows: Iterable[Mapping[str, Any]], actor: User | None = None) -> int:
    """Create many clients at once (the demo load); one ledger record counts them."""
    new = [client_check(Client(**row)) for row in rows]
    with transaction.atomic():
        Client.objects.bulk_create(new, batch_size=500)
        if new:
            ledger_record(
                actor=actor,
                action="clients.imported",
                object_type="client",
                object_id="",
                data={"count": len(new), "external_ids": [c.external_id for c in new[:100]]},
            )
    return len(new)
