"""Writes of the client's side: issuing portal sessions and sign-in links, marking a message
read, and receiving a client's reply (written by messaging's one writer).

Tokens are Django signatures (HMAC-SHA256 under SECRET_KEY, salted for this use) over the
session's id and client id, prefixed `cdp_`. We chose Django's signing over a JWT library: the
token is opaque to integrators, no claim in it is trusted without the `PortalSession` row
(which carries expiry and revocation), and it adds no dependency. The signature lets us refuse
a forged or mangled token without touching the database.
"""

import hashlib
import json
import secrets
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext

from clientdesk.accounts.models import ApiToken, User
from clientdesk.audit.models import ActivityType
from clientdesk.audit.services import activity_record, audit_append
from clientdesk.clients.models import Client
from clientdesk.core.errors import ApplicationError, NotFound, PermissionDenied, ValidationFailed
from clientdesk.core.languages import client_language
from clientdesk.core.live.recording import live_event_record
from clientdesk.core.request_meta import RequestMeta
from clientdesk.core.time import iso_utc
from clientdesk.delivery.models import Channel
from clientdesk.delivery.services.queue import delivery_create
from clientdesk.messaging.models import Direction, Message
from clientdesk.messaging.outbound import message_event_webhook_create
from clientdesk.messaging.services.documents import (
    FilesToWrite,
    attachments_check,
    fulfils_check,
)
from clientdesk.messaging.services.idempotency import (
    idempotency_fingerprint,
    idempotency_key_check,
    idempotency_key_find,
    idempotency_replay,
)
from clientdesk.messaging.services.writing import MessageWrite, message_text_check, messages_write
from clientdesk.portal.models import PortalLink, PortalLinkRequest, PortalSession
from clientdesk.portal.permissions import PortalPermission

TOKEN_PREFIX = "cdp_"  # noqa: S105 - a prefix, not a secret
_SALT = "clientdesk.portal.session"


class TooManyRequests(ApplicationError):
    status = 429
    title = "Too many requests"
    type_slug = "rate-limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class LinkUnusable(ApplicationError):
    status = 410
    title = "Gone"
    type_slug = "sign-in-link-unusable"


@dataclass(frozen=True)
class IssuedSession:
    token: str
    session: PortalSession

    def representation(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "expires_at": iso_utc(self.session.expires_at),
            "client_id": str(self.session.client_id),
        }


# The live event that ends open streams of revoked sessions (never sent to anyone).
SESSIONS_REVOKED = "control.portal_sessions_revoked"


def _session_lifetime() -> timedelta:
    return timedelta(minutes=settings.PORTAL_SESSION_MINUTES)


def _session_max_age() -> timedelta:
    return timedelta(hours=settings.PORTAL_SESSION_MAX_HOURS)


def _sign(session: PortalSession) -> str:
    # "n": a refresh within the same second still gets a token of its own.
    signed = signing.TimestampSigner(salt=_SALT).sign_object(
        {"s": session.id.hex, "c": session.client_id.hex, "n": secrets.token_hex(4)},
        compress=False,
    )
    return TOKEN_PREFIX + signed


def _check_active(client: Client) -> None:
    if not client.is_active:
        raise ValidationFailed(
            f"{client.full_name} is deactivated: no portal sessions. Reactivate the client first.",
            errors={"client_id": ["The client is deactivated."]},
        )


def _issue(
    *,
    client: Client,
    via: str,
    issued_by: User | None = None,
    issued_by_token: ApiToken | None = None,
) -> IssuedSession:
    _check_active(client)
    now = timezone.now()
    session = PortalSession.objects.create(
        client=client,
        via=via,
        issued_by=issued_by,
        issued_by_token=issued_by_token,
        created_at=now,
        expires_at=min(now + _session_lifetime(), now + _session_max_age()),
    )
    return IssuedSession(token=_sign(session), session=session)


def _client_by(*, client_id: Any, external_id: Any) -> Client:
    if (client_id is None) == (external_id is None):
        raise ValidationFailed(
            "Give either client_id or external_id.",
            errors={"client_id": ["Give client_id or external_id, not both."]},
        )
    try:
        if client_id is not None:
            return Client.objects.get(pk=client_id)
        return Client.objects.get(external_id=external_id)
    except (Client.DoesNotExist, DjangoValidationError, ValueError, TypeError) as error:
        raise NotFound("No such client.") from error


def portal_session_issue(
    *,
    issuer: User,
    token: ApiToken | None,
    client_id: Any = None,
    external_id: Any = None,
) -> IssuedSession:
    """Mint a session for one client, on behalf of the business's portal backend."""
    if not issuer.has_perm(PortalPermission.ISSUE_SESSION):
        raise PermissionDenied(
            "You need the 'Issue client portal sessions' permission (the Integration role)."
        )
    client = _client_by(client_id=client_id, external_id=external_id)
    with transaction.atomic():
        issued = _issue(
            client=client, via=PortalSession.Via.API, issued_by=issuer, issued_by_token=token
        )
        audit_append(
            actor=issuer,
            action="portal.session_issued",
            object_type="client",
            object_id=client.id,
            created_at=issued.session.created_at,
            data={"session_id": str(issued.session.id), "via": "api"},
        )
    return issued


def portal_session_authenticate(*, token: str) -> PortalSession | None:
    """The live session a portal token stands for, or None: forged, expired, revoked, its client
    deactivated, or its minting token or staff user is no longer active."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 400:
        return None
    try:
        claims = signing.TimestampSigner(salt=_SALT).unsign_object(
            token[len(TOKEN_PREFIX) :],
            max_age=_session_lifetime(),
        )
        session_id = uuid.UUID(hex=claims["s"])
        client_id = uuid.UUID(hex=claims["c"])
    except (signing.BadSignature, KeyError, TypeError, ValueError, json.JSONDecodeError):
        return None
    return portal_session_live(session_id=session_id, client_id=client_id)


def portal_session_live(*, session_id: uuid.UUID, client_id: uuid.UUID) -> PortalSession | None:
    """The session if it is live (whichever of its tokens is in hand), else None. An open
    stream asks this as its token ages: a refreshed session keeps its streams open."""
    now = timezone.now()
    session = (
        PortalSession.objects.select_related("client", "issued_by", "issued_by_token")
        .filter(
            pk=session_id,
            client_id=client_id,
            revoked_at__isnull=True,
            expires_at__gt=now,
            created_at__gt=now - _session_max_age(),
        )
        .first()
    )
    if session is None or not session.client.is_active:
        return None
    if session.via == PortalSession.Via.API:
        minted = session.issued_by_token
        user = session.issued_by
        if user is None or not user.is_active:
            return None
        if minted is not None and minted.revoked_at is not None:
            return None
    return session


def _code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def portal_link_create(*, client: Client, via: str = "command") -> str:
    """A one-time sign-in code for the reference cabinet, valid 15 minutes."""
    _check_active(client)
    code = secrets.token_urlsafe(24)
    now = timezone.now()
    with transaction.atomic():
        PortalLink.objects.create(
            digest=_code_digest(code),
            client=client,
            created_at=now,
            expires_at=now + timedelta(minutes=settings.PORTAL_LINK_MINUTES),
        )
        audit_append(
            actor=None,
            action="portal.link_created",
            object_type="client",
            object_id=client.id,
            created_at=now,
            data={"via": via},
        )
    return code


LINK_REQUEST_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class LinkRequestLimits:
    per_address: int
    per_remote: int


def _link_request_limits() -> LinkRequestLimits:
    return LinkRequestLimits(
        per_address=settings.PORTAL_LINK_REQUESTS_PER_ADDRESS,
        per_remote=settings.PORTAL_LINK_REQUESTS_PER_IP,
    )


def _email_fold(email: str) -> str:
    return email.strip().casefold()


# Advisory lock classes of the link request limits (apart from the ledger's, the live events'
# and the stream leases'): one for the address, one for the network address, always taken in
# that order so two requests never wait on each other in a cycle.
_LINK_ADDRESS_LOCK = 0x4C4E4B41  # "LNKA"
_LINK_REMOTE_LOCK = 0x4C4E4B52  # "LNKR"


def _link_request_turn(digest: str, remote_address: str) -> None:
    """Requests for one address, or from one network address, take turns until their
    transaction ends, so each counts the ones before it (on PostgreSQL each would otherwise
    count in its own snapshot, and racing requests all see room for one more). SQLite's write
    transactions take turns already: they begin IMMEDIATE."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for lock_class, value in (
            (_LINK_ADDRESS_LOCK, digest),
            (_LINK_REMOTE_LOCK, remote_address),
        ):
            key = zlib.crc32(value.encode()) - 2**31
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [lock_class, key])


def _check_link_request_rate(digest: str, remote_address: str, now: datetime) -> None:
    limits = _link_request_limits()
    since = now - LINK_REQUEST_WINDOW
    recent = PortalLinkRequest.objects.filter(created_at__gt=since)
    for rows, limit in (
        (recent.filter(email_digest=digest), limits.per_address),
        (recent.filter(remote_address=remote_address), limits.per_remote),
    ):
        times = list(rows.order_by("-created_at").values_list("created_at", flat=True)[:limit])
        if len(times) >= limit:
            retry_after = max(1, int((times[-1] + LINK_REQUEST_WINDOW - now).total_seconds()) + 1)
            raise TooManyRequests(
                f"Too many sign-in links asked for; try again in {retry_after} s.",
                retry_after=retry_after,
            )


def _link_email(client: Client, url: str) -> dict[str, Any]:
    business = settings.BUSINESS_NAME
    with client_language(client.language):
        subject = gettext("Your sign-in link for %(business)s") % {"business": business}
        intro = gettext(
            "Open this link to sign in to your online cabinet at %(business)s. It works once, "
            "within %(minutes)s minutes."
        ) % {"business": business, "minutes": settings.PORTAL_LINK_MINUTES}
        ignore = gettext("If you did not ask for it, ignore this e-mail: nothing changes.")
        button = gettext("Sign in")
    return {
        "to": client.email,
        "subject": subject,
        "text": f"{intro}\n\n{url}\n\n{ignore}\n",
        "html": (
            '<div style="font-family: sans-serif; font-size: 15px; line-height: 1.5">'
            f"<p>{escape(intro)}</p>"
            f'<p><a href="{escape(url)}">{escape(button)}</a></p>'
            f"<p>{escape(ignore)}</p></div>"
        ),
        "from_name": business,
    }


def portal_link_request(*, email: str, remote_address: str, cabinet_url: str) -> None:
    """A signed-out client asks for a sign-in link by e-mail. Every active client with that
    address gets one (a one-time link as `portal_link` makes, by a Delivery on the e-mail
    channel, so it is retried); an unknown address gets nothing, and the caller cannot tell
    the difference: the same answer, and the same limits per address and per network address
    (TooManyRequests) whether it is known or not."""
    digest = hashlib.sha256(_email_fold(email).encode()).hexdigest()
    remote = remote_address[:45]  # counted as stored
    with transaction.atomic():
        _link_request_turn(digest, remote)
        now = timezone.now()  # read after the turn: the requests before it are all counted
        _check_link_request_rate(digest, remote, now)
        PortalLinkRequest.objects.filter(created_at__lte=now - LINK_REQUEST_WINDOW).delete()
        PortalLinkRequest.objects.create(email_digest=digest, remote_address=remote, created_at=now)
        clients = list(
            Client.objects.filter(email__iexact=email.strip(), is_active=True).order_by("id")[:5]
        )
        for client in clients:
            code = portal_link_create(client=client, via="email")
            delivery_create(
                channel=Channel.EMAIL,
                client=client,
                subject_id=uuid.uuid5(client.id, f"portal.link:{_code_digest(code)}"),
                payload=_link_email(client, f"{cabinet_url}#code={code}"),
            )


def portal_link_redeem(*, code: str) -> IssuedSession:
    """Exchange a sign-in code for a session, once."""
    if not isinstance(code, str) or not 1 <= len(code) <= 100:
        raise ValidationFailed("That sign-in code is malformed.", errors={"code": ["Malformed."]})
    now = timezone.now()
    with transaction.atomic():
        # The conditional update claims the code: of two concurrent redeemers only one wins.
        claimed = PortalLink.objects.filter(
            digest=_code_digest(code),
            used_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=now,
        ).update(used_at=now)
        if not claimed:
            raise LinkUnusable(
                "This sign-in link was already used or has expired. Ask for a new link."
            )
        link = PortalLink.objects.select_related("client").get(digest=_code_digest(code))
        return _issue(client=link.client, via=PortalSession.Via.LINK)


class SessionAtMaxAge(ApplicationError):
    status = 401
    title = "Session at its maximum age"
    type_slug = "session-max-age"


# The least a refresh moves a session's end by (a tenth of a session's life, for short ones); a
# smaller move is not made (nor recorded).
REFRESH_STEP = timedelta(minutes=1)


def _refresh_step() -> timedelta:
    return min(REFRESH_STEP, _session_lifetime() / 10)


def portal_session_refresh(*, session: PortalSession) -> IssuedSession:
    """A new token for a live session, which now lasts `PORTAL_SESSION_MINUTES` from now, but
    never past its sign-in plus `PORTAL_SESSION_MAX_HOURS`. The earlier token stays valid until
    its own expiry (another tab may still hold it). Soon after the last renewal (a minute, or a
    tenth of a short session's life) the end stays where it is: the token is new, nothing is
    written."""
    with transaction.atomic():
        now = timezone.now()
        row = (
            PortalSession.objects.select_for_update()
            .filter(pk=session.pk, revoked_at__isnull=True, expires_at__gt=now)
            .first()
        )
        limit = (row.created_at if row else now) + _session_max_age()
        if row is None or limit <= now:
            raise SessionAtMaxAge(
                "This session has ended or reached its maximum age: sign in again."
            )
        # Never shorter than it was, never past the maximum age (a lowered setting applies).
        expires_at = min(max(row.expires_at, now + _session_lifetime()), limit)
        if timedelta(0) <= expires_at - row.expires_at < _refresh_step():
            # Renewed within the last minute (another tab, or a loop): a new token for the same
            # end, and nothing written, so refreshing in a loop cannot fill the ledger.
            return IssuedSession(token=_sign(row), session=row)
        row.expires_at = expires_at
        row.save(update_fields=["expires_at"])
        audit_append(
            actor=None,
            client_actor=row.client,
            action="portal.session_refreshed",
            object_type="client",
            object_id=row.client_id,
            created_at=now,
            data={"session_id": str(row.id), "expires_at": iso_utc(row.expires_at)},
        )
    return IssuedSession(token=_sign(row), session=row)


def _sessions_revoked_event(
    client_id: uuid.UUID, session_ids: list[str] | None, reason: str
) -> None:
    """Open streams of these sessions (None: all of the client's) close (`portal/streams.py`),
    whichever process holds them. The last write of its transaction (`live_event_record`)."""
    data: dict[str, Any] = {"reason": reason}
    if session_ids is None:
        data["all"] = True
    else:
        data["sessions"] = session_ids
    live_event_record(client_id=client_id, type=SESSIONS_REVOKED, data=data)


def portal_session_end(*, session: PortalSession) -> None:
    """Sign out: the session ends for good, every token of it with it, and its open streams
    close."""
    with transaction.atomic():
        now = timezone.now()
        ended = PortalSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if not ended:
            return
        audit_append(
            actor=None,
            client_actor=session.client,
            action="portal.session_ended",
            object_type="client",
            object_id=session.client_id,
            created_at=now,
            data={"session_id": str(session.id)},
        )
        _sessions_revoked_event(session.client_id, [str(session.id)], "signed_out")


def portal_client_deactivated(client: Client) -> None:
    """`clients.deactivated`: the client's sessions and unused sign-in links end for good (a
    reactivation revives none of them), and its open streams close. In the deactivating
    transaction, after everything else it writes."""
    now = timezone.now()
    revoked = PortalSession.objects.filter(client=client, revoked_at__isnull=True).update(
        revoked_at=now
    )
    PortalLink.objects.filter(client=client, used_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=now
    )
    if revoked:
        _sessions_revoked_event(client.id, None, "client_deactivated")


def portal_message_read(*, client: Client, message_id: uuid.UUID) -> Message:
    """Mark a message from the business read. Idempotent: the first time is kept. Only that
    message: earlier unread ones stay unread until opened."""
    with transaction.atomic():
        try:
            message = (
                Message.objects.select_for_update(of=("self",))
                .select_related("sender", "client")
                .get(pk=message_id, client=client)
            )
        except (Message.DoesNotExist, DjangoValidationError, ValueError, TypeError) as error:
            raise NotFound("No such message.") from error
        if message.direction != Direction.OUT:
            raise ValidationFailed(
                "Only messages from the business can be marked read.",
                errors={"id": ["This is your own message."]},
            )
        if message.read_at is not None:
            return message
        now = timezone.now()
        message.read_at = now
        message.save(update_fields=["read_at"])
        activity_record(
            client=client,
            type=ActivityType.MESSAGE_READ,
            actor=None,
            by_client=True,
            created_at=now,
            subject_id=message.id,
            data={"message_id": str(message.id)},
        )
        message_event_webhook_create(message, type="message.read", at=now)
        audit_append(
            actor=None,
            client_actor=client,
            action="message.read",
            object_type="message",
            object_id=message.id,
            created_at=now,
        )
        live_event_record(
            client_id=client.id,
            type="message.read",
            data={"id": str(message.id), "read_at": iso_utc(now)},
        )
    return message


def _check_reply_rate(client: Client, now: datetime) -> None:
    window = timedelta(seconds=60)
    recent = list(
        Message.objects.filter(client=client, direction=Direction.IN, created_at__gt=now - window)
        .order_by("created_at")
        .values_list("created_at", flat=True)[: settings.PORTAL_REPLIES_PER_MINUTE]
    )
    if len(recent) >= settings.PORTAL_REPLIES_PER_MINUTE:
        retry_after = max(1, int((recent[0] + window - now).total_seconds()) + 1)
        raise TooManyRequests(
            f"At most {settings.PORTAL_REPLIES_PER_MINUTE} replies a minute; "
            f"try again in {retry_after} s.",
            retry_after=retry_after,
        )


@dataclass(frozen=True)
class ReplyResult:
    message: Message
    replayed: bool


def portal_reply_create(
    *,
    client: Client,
    body: str,
    idempotency_key: str,
    meta: RequestMeta,
    in_reply_to: Any = None,
    attachments: Any = None,
    fulfils: Any = None,
) -> ReplyResult:
    """Receive a client's reply: plain text, never rendered, checked as staff text is; written
    by the one writer of messages, which replays a retry under its key. `attachments`: ids of
    the client's own uploads; `fulfils`: {document request id: file id}, each an open request
    on a message to this client answered by the client's own upload. With files the text may
    be empty."""
    idempotency_key_check(idempotency_key)
    message_text_check(body, noun="reply", blank_ok=bool(attachments or fulfils))
    request: dict[str, Any] = {"body": body, "in_reply_to": str(in_reply_to or "")}
    if attachments:  # only then, so keys stored before files still replay
        request["attachments"] = [str(a) for a in attachments]
    if fulfils:
        request["fulfils"] = {str(k): str(v) for k, v in fulfils.items()}
    fingerprint = idempotency_fingerprint(request)
    try:
        files = FilesToWrite(
            attachments=attachments_check(attachments, client=client),
            fulfils=fulfils_check(fulfils, client=client),
        )
        original = _reply_original(client, in_reply_to)
        # The writer locks the client's row first, so replies of one client take turns and the
        # count holds.
        (result,) = messages_write(
            writes=[
                MessageWrite(
                    client=client,
                    direction=Direction.IN,
                    body=body,
                    in_reply_to=original,
                    idempotency_key=idempotency_key,
                    fingerprint=fingerprint,
                    meta=meta,
                    files=files,
                )
            ],
            check_locked=lambda now: _check_reply_rate(client, now),
        )
    except (ValidationFailed, TooManyRequests):
        # A retry of a reply that went through gets its answer, whatever would refuse it now.
        existing = idempotency_key_find(key=idempotency_key, client=client)
        if existing is None:
            raise
        result = idempotency_replay(existing, fingerprint)
    if result.message is not None:
        return ReplyResult(result.message, replayed=False)
    message = Message.objects.select_related("sender").get(pk=result.message_id)
    return ReplyResult(message, replayed=True)


def _reply_original(client: Client, in_reply_to: Any) -> Message | None:
    if in_reply_to is None:
        return None
    original = Message.objects.filter(pk=in_reply_to, client=client).first()
    if original is None:
        raise ValidationFailed(
            "in_reply_to must be the id of one of your messages.",
            errors={"in_reply_to": ["No such message."]},
        )
    return original
