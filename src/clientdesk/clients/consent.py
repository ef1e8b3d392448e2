"""A client's consent to outreach: the one write that turns it off and on, and the signed token
of the one-click unsubscribe link (RFC 8058) that outreach e-mail carries.

Service messages are never subject to it (DESIGN non-negotiable 9): only messages of category
outreach are held back for a client who opted out."""

import uuid

from django.core import signing
from django.db import transaction
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.clients.hooks import ConsentChange, consent_changed
from clientdesk.clients.models import Client
from clientdesk.clients.permissions import ClientsPermission
from clientdesk.clients.selectors import client_get
from clientdesk.core.errors import PermissionDenied
from clientdesk.core.ledger import ledger_record

# Its own salt: a value signed for anything else never opens an unsubscribe link.
UNSUBSCRIBE_SALT = "clientdesk.clients.unsubscribe"
# Where a change came from, in the ledger record's data (bounded: it is written as given).
VIA_LENGTH = 40


def check_can_change_consent(user: User) -> None:
    if not user.has_perm(ClientsPermission.CHANGE_CLIENT):
        raise PermissionDenied(
            "You need the 'Can change client' permission to change a client's consent."
        )


def client_consent_change(
    *, client_id: uuid.UUID | str, opt_out: bool, actor: User | None, by_client: bool, via: str
) -> Client:
    """Turn the client's outreach off (`opt_out=True`) or on again.

    `by_client`: the client did it (the cabinet, the unsubscribe link) and `actor` is None;
    otherwise `actor` is the staff user acting on the client's written request (they need
    *Can change client*), or None for Clientdesk itself. `via` names the door ("unsubscribe_link",
    "cabinet", "api", "import", ...). Nothing is written when the consent is already so:
    a repeated unsubscribe is answered alike and records nothing new."""
    if by_client and actor is not None:
        raise ValueError("a change by the client has no staff actor")
    if actor is not None:
        check_can_change_consent(actor)
    client = client_get(client_id=client_id)
    if client.outreach_opt_out == opt_out:
        return client  # read without a lock: a repeated unsubscribe writes and waits for nothing
    with transaction.atomic():
        client = Client.objects.select_for_update().get(pk=client.pk)
        if client.outreach_opt_out == opt_out:
            return client
        now = timezone.now()
        before = client.outreach_opt_out
        client.outreach_opt_out = opt_out
        client.outreach_opt_out_at = now if opt_out else None
        client.save(update_fields=["outreach_opt_out", "outreach_opt_out_at", "updated_at"])
        ledger_record(
            actor=actor,
            client_actor=client if by_client else None,
            action="client.consent_changed",
            object_type="client",
            object_id=client.id,
            data={
                "client_id": str(client.id),
                "before": {"outreach_opt_out": before},
                "after": {"outreach_opt_out": opt_out},
                "via": via[:VIA_LENGTH],
            },
        )
        consent_changed(
            ConsentChange(
                client=client,
                opt_out=opt_out,
                actor=actor,
                by_client=by_client,
                via=via[:VIA_LENGTH],
                at=now,
            )
        )
    return client


def unsubscribe_token(client: Client) -> str:
    """The signed token of the client's unsubscribe link: the client's id and its HMAC, in
    URL-safe characters only. It does not expire (a link in an old e-mail must still work) and
    opens only this client's consent."""
    return signing.Signer(salt=UNSUBSCRIBE_SALT, sep=".").sign(client.pk.hex)


def unsubscribe_token_client(token: str) -> Client | None:
    """The client a token was signed for; None when it was tampered with, signed with another
    salt, or names no client."""
    try:
        value = signing.Signer(salt=UNSUBSCRIBE_SALT, sep=".").unsign(token)
        client_id = uuid.UUID(hex=value)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    return Client.objects.filter(pk=client_id).first()
