"""Writes for clients."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from clientdesk.clients.models import Client
from clientdesk.core.errors import Conflict, ValidationFailed


def client_create(
    *,
    external_id: str,
    first_name: str,
    last_name: str = "",
    email: str = "",
    phone: str = "",
    language: str = "en",
    attributes: dict[str, Any] | None = None,
) -> Client:
    client = Client(
        external_id=external_id,
        first_name=first_name,
        last_name=last_name,
        email=email,
        phone=phone,
        language=language,
        attributes=attributes or {},
    )
    client.refresh_derived()
    try:
        client.full_clean(validate_unique=False)
    except ValidationError as error:
        raise ValidationFailed(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items()),
            errors=error.message_dict,
        ) from error
    try:
        with transaction.atomic():
            client.save(force_insert=True)
    except IntegrityError as error:
        if Client.objects.filter(external_id=external_id).exists():
            raise Conflict(
                f"A client with external_id {external_id!r} already exists.",
                errors={"external_id": ["A client with this external id already exists."]},
            ) from error
        raise
    return client
