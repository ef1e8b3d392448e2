"""Broadcasts: one personalised message to many clients, written by the one writer of messages.

`broadcast_request_parse` checks a request (the API's JSON, the composer's form, the command's
flags all end there); `broadcast_preview` answers a dry run and writes nothing;
`broadcast_create` resolves the audience once and stores the recipients with their due times
and the skips known then; `broadcasts_send_batch` (the worker's job, `broadcasts_job`) writes
due recipients' messages a batch at a time; `broadcast_cancel` stops what is not written yet.

Exactly one message per recipient: a batch claims its recipients (on PostgreSQL `FOR UPDATE
SKIP LOCKED`, on SQLite inside the IMMEDIATE transaction that serialises writers) and writes their
messages, their new status and the broadcast's counts in that one transaction, so a crash
repeats at most an uncommitted batch, and two workers never take the same recipient. Behind it,
the unique index on (broadcast, client) of messages refuses a second copy. Cancel flips every
pending recipient in one UPDATE, which waits for the rows a running batch holds and then skips
them (they are sent by then): once it returns, nothing more is written for that broadcast.

Lock order in a batch (the same in cancel: recipients, then the broadcast): recipients, the
broadcasts' rows, the clients' rows (the writer), the live-event order lock last; the writes
after the writer touch only rows the batch already holds.
"""

import hashlib
import logging
import time as monotonic_time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from clientdesk.accounts.models import User
from clientdesk.audit.services import audit_append
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import search_terms
from clientdesk.clients.validators import ATTRIBUTE_NAME, LANGUAGE_CODES, MAX_ATTRIBUTE_VALUE
from clientdesk.core import notify
from clientdesk.core.bounded import Refused, parse_instant
from clientdesk.core.errors import Conflict, PermissionDenied, ValidationFailed
from clientdesk.core.live.recording import live_events_record
from clientdesk.core.request_meta import RequestMeta
from clientdesk.core.textcheck import text_problem
from clientdesk.core.time import iso_utc
from clientdesk.core.zones import zone_or_none
from clientdesk.delivery.models import Channel
from clientdesk.delivery.selectors import endpoint_get
from clientdesk.delivery.services.queue import delivery_create
from clientdesk.messaging.models import Category, Direction, Message, MessageTemplateVersion
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.messaging.rendering import (
    CATALOGUE,
    Rendered,
    RenderFailed,
    check_renders_within_bounds,
    check_template_variables,
    parse_template,
    render_message,
)
from clientdesk.messaging.selectors import broadcast_files, template_current_version, template_get
from clientdesk.messaging.services.documents import (
    FilesToWrite,
    attachments_check,
    broadcast_files_attach,
)
from clientdesk.messaging.services.idempotency import idempotency_fingerprint, idempotency_key_check
from clientdesk.messaging.services.writing import MessageWrite, message_text_check, messages_write
from clientdesk.outreach.models import (
    Broadcast,
    BroadcastRecipient,
    BroadcastStatus,
    OutreachSettings,
    RecipientStatus,
    SkipReason,
)
from clientdesk.outreach.permissions import OutreachPermission
from clientdesk.outreach.selectors import (
    audience_clients,
    broadcast_get,
    clients_at_outreach_cap,
    known_client_ids,
    known_external_ids,
    outreach_settings_get,
)

log = logging.getLogger(__name__)

AUDIENCE_KEYS = ("search", "language", "attributes", "client_ids", "external_ids")
MAX_IDS = 100_000
MAX_ATTRIBUTE_FILTERS = 20
MAX_SEARCH = 200
# A broadcast is planned within a year; a time a minute old is "now" (clocks and typing).
MAX_AHEAD = timedelta(days=366)
PAST_GRACE = timedelta(minutes=1)
PREVIEW = 20
# Recipients a batch writes: short transactions, so a single send never waits long for one.
BATCH = 500
# How long the worker's job goes on writing batches before it lets deliveries run.
JOB_SECONDS = 1.0
SQLITE_BREATH = 0.05
# The ledger's and the webhook's subject ids of a broadcast's events.
_COMPLETED = "broadcast.completed"


def check_can_broadcast(user: User) -> None:
    if not user.has_perm(MessagingPermission.SEND_BROADCAST):
        raise PermissionDenied(
            "You need the 'Send a broadcast' permission to send broadcasts. "
            "Ask your CRM administrator for access."
        )


# --- The request ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BroadcastRequest:
    """A checked broadcast: the audience (its keys ANDed; the id lists deduplicated), the text
    (`body`, or `template_id` with `body` empty), its category, and when: `send_at` (an aware
    instant) or `send_at_local` (naive, read in each client's zone), or neither (now)."""

    audience: dict[str, Any]
    body: str
    template_id: uuid.UUID | None
    category: str
    expects_reply: bool | None
    send_at: datetime | None
    send_at_local: datetime | None
    attachments: tuple[str, ...] = ()  # file ids, the creator's own uploads

    def fingerprint(self) -> str:
        request: dict[str, Any] = {
            "audience": self.audience,
            "body": self.body,
            "template_id": str(self.template_id) if self.template_id else None,
            "category": self.category,
            "expects_reply": self.expects_reply,
            "send_at": iso_utc(self.send_at),
            "send_at_local": self.send_at_local.isoformat() if self.send_at_local else None,
        }
        if self.attachments:  # only then, so keys stored before files still replay
            request["attachments"] = list(self.attachments)
        return idempotency_fingerprint(request)


def _invalid(name: str, message: str, detail: str | None = None) -> ValidationFailed:
    return ValidationFailed(detail or f"{name}: {message}", errors={name: [message]})


def _text(value: Any, name: str, *, limit: int) -> str:
    if not isinstance(value, str):
        raise _invalid(name, "Must be text.")
    if problem := text_problem(value):
        raise _invalid(name, f"The text {problem}")
    if len(value) > limit:
        raise _invalid(name, f"At most {limit:,} characters.")
    return value


def _id_list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(name, "Must be a list.")
    if not value:
        raise _invalid(name, "Give at least one id, or leave the key out.")
    if len(value) > MAX_IDS:
        raise _invalid(name, f"At most {MAX_IDS:,} ids in one broadcast.")
    return value


def _audience(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(
            "audience",
            "Must be an object with search, language, attributes, client_ids or external_ids.",
        )
    unknown = [str(k)[:40] for k in value if k not in AUDIENCE_KEYS]
    if unknown:
        raise _invalid(
            f"audience.{unknown[0]}",
            f"Not an audience key; use {', '.join(AUDIENCE_KEYS)}.",
        )
    if not value:
        raise _invalid(
            "audience",
            "Give at least one of search, language, attributes, client_ids, external_ids.",
            "An empty audience names nobody: give at least one key.",
        )
    audience: dict[str, Any] = {}
    if "search" in value:
        search = _text(value["search"], "audience.search", limit=MAX_SEARCH)
        if not search_terms(search):
            raise _invalid("audience.search", "Give at least one word to search for.")
        audience["search"] = search
    if "language" in value:
        language = _text(value["language"], "audience.language", limit=8).lower()
        if language not in LANGUAGE_CODES:
            raise _invalid("audience.language", "Not a known language code, e.g. en or pt-br.")
        audience["language"] = language
    if "attributes" in value:
        attributes = value["attributes"]
        if not isinstance(attributes, dict) or not attributes:
            raise _invalid("audience.attributes", "Must be an object of name → value.")
        if len(attributes) > MAX_ATTRIBUTE_FILTERS:
            raise _invalid("audience.attributes", f"At most {MAX_ATTRIBUTE_FILTERS} filters.")
        checked: dict[str, Any] = {}
        for name, item in attributes.items():
            if not ATTRIBUTE_NAME.match(str(name)):
                raise _invalid(
                    "audience.attributes", f"{str(name)[:40]!r} is not an attribute name."
                )
            field_name = f"audience.attributes.{name}"
            if isinstance(item, str):
                checked[name] = _text(item, field_name, limit=MAX_ATTRIBUTE_VALUE)
            elif isinstance(item, (bool, int, float)) and not (
                isinstance(item, float) and item != item  # NaN
            ):
                checked[name] = item
            else:
                raise _invalid(field_name, "Must be text, a number or true/false.")
        audience["attributes"] = checked
    if "client_ids" in value:
        ids = []
        for item in _id_list(value["client_ids"], "audience.client_ids"):
            try:
                ids.append(uuid.UUID(item) if isinstance(item, str) and len(item) <= 40 else None)
            except ValueError:
                ids.append(None)
            if ids[-1] is None:
                raise _invalid("audience.client_ids", f"{str(item)[:40]!r} is not a client id.")
        audience["client_ids"] = sorted({str(i) for i in ids})
    if "external_ids" in value:
        externals = [
            _text(item, "audience.external_ids", limit=64)
            for item in _id_list(value["external_ids"], "audience.external_ids")
        ]
        audience["external_ids"] = sorted(set(externals))
    return audience


def _send_at(value: Any, now: datetime) -> datetime:
    try:
        moment = parse_instant(value, naive=None)
    except Refused as error:
        raise _invalid("send_at", str(error)) from error
    if moment < now - PAST_GRACE:
        raise _invalid("send_at", "Must not be in the past.")
    if moment > now + MAX_AHEAD:
        raise _invalid("send_at", "Must be within a year.")
    return moment


def _send_at_local(value: Any, now: datetime) -> datetime:
    rule = "Must be a local date and time without an offset, e.g. 2026-12-01T09:00:00."
    if not isinstance(value, str) or len(value) > 32 or not value.isascii():
        raise _invalid("send_at_local", rule)
    try:
        local = parse_datetime(value.strip())
    except ValueError:
        local = None
    if local is None or local.tzinfo is not None:
        raise _invalid("send_at_local", rule)
    # Past everywhere once it is past in the world's latest zone (UTC-12).
    if local.replace(tzinfo=UTC) + timedelta(hours=12) < now - PAST_GRACE:
        raise _invalid("send_at_local", "Must not be in the past (in every time zone).")
    if local.replace(tzinfo=UTC) - timedelta(hours=14) > now + MAX_AHEAD:
        raise _invalid("send_at_local", "Must be within a year.")
    return local.replace(second=local.second, microsecond=0)


def broadcast_request_parse(data: Any) -> BroadcastRequest:
    """Check a broadcast request as the API takes it (JSON: `audience`, `body` or
    `template_id`, `category`, optional `expects_reply`, `send_at` or `send_at_local`; a
    `dry_run` key is the caller's); ValidationFailed (422) naming the field otherwise. The
    text itself is checked here too: valid, within bounds, renderable at all."""
    if not isinstance(data, dict):
        raise _invalid("body", "Send the broadcast as a JSON object.")
    known = {
        "audience",
        "body",
        "template_id",
        "category",
        "expects_reply",
        "send_at",
        "send_at_local",
        "attachments",
        "dry_run",
    }
    unknown = [str(k)[:40] for k in data if k not in known]
    if unknown:
        raise _invalid(unknown[0], "Not a field of a broadcast.")
    now = timezone.now()
    if "audience" not in data:
        raise _invalid("audience", "This field is required.")
    audience = _audience(data["audience"])
    category = data.get("category")
    if category not in Category.values:
        raise _invalid("category", "Must be service or outreach.")
    body = data.get("body")
    template_value = data.get("template_id")
    if (body is None) == (template_value is None):
        raise _invalid("body", "Give body or template_id (one of them).")
    template_id = None
    if body is not None:
        body = _text(body, "body", limit=1_000_000)
        message_text_check(body)
        _check_source(body, "body")
    else:
        try:
            template_id = uuid.UUID(str(template_value)[:40])
        except ValueError as error:
            raise _invalid("template_id", "Must be a template's id.") from error
    expects_reply = data.get("expects_reply")
    if expects_reply is not None and not isinstance(expects_reply, bool):
        raise _invalid("expects_reply", "Must be true or false.")
    send_at = data.get("send_at")
    send_at_local = data.get("send_at_local")
    if send_at is not None and send_at_local is not None:
        raise _invalid(
            "send_at_local",
            "Give send_at or send_at_local, not both.",
            "Give send_at (an instant) or send_at_local (a local time), not both.",
        )
    if "dry_run" in data and not isinstance(data["dry_run"], bool):
        raise _invalid("dry_run", "Must be true or false.")
    attachments = data.get("attachments") or []
    if not isinstance(attachments, list) or not all(isinstance(a, str) for a in attachments):
        raise _invalid("attachments", "A list of file ids.")
    return BroadcastRequest(
        audience=audience,
        body=body or "",
        template_id=template_id,
        category=str(category),
        expects_reply=expects_reply,
        send_at=_send_at(send_at, now) if send_at is not None else None,
        send_at_local=_send_at_local(send_at_local, now) if send_at_local is not None else None,
        attachments=tuple(a[:64] for a in attachments),
    )


def _check_source(source: str, name: str) -> None:
    """Text that parses, names only variables that can resolve, and stays within the rendering
    bounds for any client (a render bomb is refused before any client is read)."""
    try:
        _, used = parse_template(source)
        check_template_variables(used)
        check_renders_within_bounds(source)
    except RenderFailed as error:
        raise ValidationFailed(
            error.detail, errors={name: [error.detail]}, **error.extra
        ) from error


# --- Planning: who gets what, when ----------------------------------------------------------


def zone_of(client: Client, default: ZoneInfo) -> ZoneInfo:
    """The client's own zone; the outreach default for a client without one."""
    if not client.timezone:
        return default
    return zone_or_none(client.timezone) or default


def quiet_hours(settings: OutreachSettings) -> tuple[time, time] | None:
    start, end = settings.quiet_hours_start, settings.quiet_hours_end
    if start is None or end is None or start == end:
        return None
    return start, end


def deliver_time(at: datetime, zone: ZoneInfo, quiet: tuple[time, time] | None) -> datetime:
    """When a notification written at `at` may reach a client in `zone`: at once, or when the
    quiet hours (local times; "21:00"–"08:00" spans midnight) end."""
    if quiet is None:
        return at
    start, end = quiet
    local = at.astimezone(zone)
    now = local.time().replace(tzinfo=None)
    day = local.date()
    if start < end:
        inside = start <= now < end
    else:
        inside = now >= start or now < end
        if now >= start:
            day += timedelta(days=1)
    if not inside:
        return at
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def _due(request: BroadcastRequest, zone: ZoneInfo, now: datetime) -> datetime:
    if request.send_at is not None:
        return max(request.send_at, now)
    if request.send_at_local is not None:
        return max(request.send_at_local.replace(tzinfo=zone).astimezone(UTC), now)
    return now


class _Text:
    """The broadcast's text for each client: the typed body, or the client's variant of the
    template's version; each source parsed once (rendering.py caches the parse)."""

    def __init__(self, *, body: str, version: MessageTemplateVersion | None, sender: User) -> None:
        self.body = body
        self.version = version
        self.sender = sender

    def source(self, client: Client) -> tuple[str, str]:
        if self.version is None:
            return "", self.body
        return self.version.variant_for(client.language)

    def complete(self, client: Client) -> bool:
        """Whether every variable the client's text uses has a value (then rendering cannot
        miss one); otherwise `render` decides (a fallback may stand in)."""
        _, used = parse_template(self.source(client)[1])
        for path in used:
            if path == "today":
                continue
            if path in CATALOGUE:
                value = CATALOGUE[path].value(client, self.sender)
            else:
                value = client.attributes.get(path) if isinstance(client.attributes, dict) else None
            if value is None or value == "":
                return False
        return True

    def render(self, client: Client) -> tuple[str, Rendered]:
        language, source = self.source(client)
        return language, render_message(source=source, client=client, sender=self.sender)


def _template_version(template_id: uuid.UUID | None) -> MessageTemplateVersion | None:
    if template_id is None:
        return None
    try:
        template = template_get(template_id=template_id)
    except Exception as error:  # NotFound, or an id of no template
        raise _invalid("template_id", "No such template.") from error
    if not template.is_active:
        raise _invalid("template_id", f"The template {template.name!r} is deactivated.")
    version = template_current_version(template=template)
    for source in version.variants.values():
        _check_source(source, "template_id")
    return version


@dataclass
class _Plan:
    rows: list[tuple[uuid.UUID, datetime, str, str]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    preview: list[dict[str, Any]] = field(default_factory=list)
    version: MessageTemplateVersion | None = None

    @property
    def to_send(self) -> int:
        return len(self.rows) - sum(self.skipped.values())


def _check_ids_known(audience: dict[str, Any]) -> None:
    if "client_ids" in audience:
        ids = [uuid.UUID(i) for i in audience["client_ids"]]
        unknown = sorted(str(i) for i in set(ids) - known_client_ids(ids))
        if unknown:
            raise ValidationFailed(
                f"{len(unknown):,} of the client_ids name no client, e.g. {unknown[0]}.",
                errors={"audience.client_ids": [f"{len(unknown):,} unknown ids."]},
                unknown=unknown[:20],
            )
    if "external_ids" in audience:
        externals = audience["external_ids"]
        missing = sorted(set(externals) - known_external_ids(externals))
        if missing:
            raise ValidationFailed(
                f"{len(missing):,} of the external_ids name no client, e.g. {missing[0][:64]!r}.",
                errors={"audience.external_ids": [f"{len(missing):,} unknown ids."]},
                unknown=missing[:20],
            )


def _plan(*, actor: User, request: BroadcastRequest, now: datetime) -> _Plan:
    """Resolve the audience once and decide each client's due time or skip reason; reads only."""
    _check_ids_known(request.audience)
    settings = outreach_settings_get()
    default = zone_or_none(settings.default_timezone) or ZoneInfo("UTC")
    quiet = quiet_hours(settings)
    outreach = request.category == Category.OUTREACH
    capped: set[uuid.UUID] = set()
    if outreach and settings.max_outreach_per_week is not None:
        capped = clients_at_outreach_cap(cap=settings.max_outreach_per_week)
    plan = _Plan(version=_template_version(request.template_id))
    text = _Text(body=request.body, version=plan.version, sender=actor)
    for client in audience_clients(request.audience):
        zone = zone_of(client, default)
        due = _due(request, zone, now)
        reason = ""
        rendered: Rendered | None = None
        if not client.is_active:
            reason = SkipReason.INACTIVE
        elif outreach and client.outreach_opt_out:
            reason = SkipReason.OPTED_OUT
        elif client.pk in capped:
            reason = SkipReason.FREQUENCY_CAP
        elif len(plan.preview) < PREVIEW or not text.complete(client):
            try:
                rendered = text.render(client)[1]
            except RenderFailed:
                reason = SkipReason.MISSING_VARIABLES
        status = RecipientStatus.SKIPPED if reason else RecipientStatus.PENDING
        plan.rows.append((client.pk, due, status, reason))
        if reason:
            plan.skipped[reason] += 1
        elif len(plan.preview) < PREVIEW and rendered is not None:
            plan.preview.append(
                {
                    "client_id": str(client.pk),
                    "body": rendered.body,
                    "deliver_at": iso_utc(deliver_time(due, zone, quiet)),
                }
            )
    return plan


@dataclass(frozen=True)
class BroadcastPreview:
    """A dry run: how many would get the message, who is skipped and why, the first ones'
    text and notification times."""

    recipients: int
    skipped: dict[str, int]
    preview: list[dict[str, Any]]


def broadcast_preview(*, actor: User, request: BroadcastRequest) -> BroadcastPreview:
    check_can_broadcast(actor)
    plan = _plan(actor=actor, request=request, now=timezone.now())
    return BroadcastPreview(
        recipients=plan.to_send, skipped=dict(plan.skipped), preview=plan.preview
    )


# --- Creating -------------------------------------------------------------------------------


def _replay(existing: Broadcast, fingerprint: str) -> tuple[Broadcast, bool]:
    if existing.fingerprint != fingerprint:
        raise ValidationFailed(
            "This Idempotency-Key was already used for a different broadcast; use a new key "
            "for a new broadcast.",
            errors={"Idempotency-Key": ["Already used with another request body."]},
        )
    return existing, True


def broadcast_create(
    *, actor: User, request: BroadcastRequest, idempotency_key: str, meta: RequestMeta
) -> tuple[Broadcast, bool]:
    """Store a broadcast and its recipients (fixed now), for the workers to send; returns it
    and whether it is the replay of an earlier request with the same key. Nothing is sent in
    here: the recipients are due at their time, and the workers take them."""
    check_can_broadcast(actor)
    idempotency_key_check(idempotency_key)
    fingerprint = request.fingerprint()
    existing = Broadcast.objects.filter(created_by=actor, idempotency_key=idempotency_key).first()
    if existing is not None:
        return _replay(existing, fingerprint)
    now = timezone.now()
    plan = _plan(actor=actor, request=request, now=now)
    if not plan.rows:
        raise ValidationFailed(
            "No client matches this audience.", errors={"audience": ["No client matches."]}
        )
    if plan.to_send == 0:
        raise ValidationFailed(
            f"All {len(plan.rows):,} clients of this audience would be skipped "
            f"({', '.join(f'{r}: {n}' for r, n in sorted(plan.skipped.items()))}); nothing "
            "to send.",
            errors={"audience": ["Every client would be skipped."]},
            skipped=dict(plan.skipped),
        )
    files = attachments_check(list(request.attachments), user=actor)
    ids = sorted(str(pk) for pk, *_ in plan.rows)
    version = plan.version
    expects_reply = request.expects_reply
    if expects_reply is None:
        expects_reply = bool(version and version.template.expects_reply)
    try:
        with transaction.atomic():
            broadcast = Broadcast.objects.create(
                created_by=actor,
                created_at=now,
                status=BroadcastStatus.SCHEDULED,
                category=request.category,
                audience=request.audience,
                body=request.body,
                template=version.template if version else None,
                template_version=version.version if version else None,
                expects_reply=expects_reply,
                send_at=request.send_at,
                send_at_local=request.send_at_local.isoformat() if request.send_at_local else "",
                recipients=len(plan.rows),
                skipped=sum(plan.skipped.values()),
                recipients_sha256=hashlib.sha256("\n".join(ids).encode()).hexdigest(),
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )
            _recipients_insert(broadcast, plan.rows)
            broadcast_files_attach(broadcast_id=broadcast.pk, files=files, now=now)
            audit_append(
                actor=actor,
                action="broadcast.created",
                object_type="broadcast",
                object_id=broadcast.pk,
                created_at=now,
                data={
                    "audience": request.audience,
                    "category": request.category,
                    "recipients": len(plan.rows),
                    "skipped": dict(plan.skipped),
                    "recipients_sha256": broadcast.recipients_sha256,
                    "template_id": str(version.template_id) if version else None,
                    "template_version": version.version if version else None,
                    "body_sha256": hashlib.sha256(request.body.encode()).hexdigest(),
                    **(
                        {
                            "attachments": [
                                {"name": f.name, "size": f.size, "sha256": f.sha256} for f in files
                            ]
                        }
                        if files
                        else {}
                    ),
                    "send_at": iso_utc(request.send_at),
                    "send_at_local": broadcast.send_at_local or None,
                    "ip": meta.ip,
                    "user_agent": meta.user_agent,
                    "request_id": meta.request_id,
                },
            )
            notify.work_due()
            _progress([broadcast])
    except IntegrityError:
        # The same key, committed by a concurrent request since the lookup above.
        existing = Broadcast.objects.filter(
            created_by=actor, idempotency_key=idempotency_key
        ).first()
        if existing is None:
            raise
        return _replay(existing, fingerprint)
    return broadcast, False


def _recipients_insert(
    broadcast: Broadcast, rows: list[tuple[uuid.UUID, datetime, str, str]]
) -> None:
    """The recipients in one `executemany` (model instances cost more than the insert)."""
    meta = BroadcastRecipient._meta
    named = {f.name: f for f in meta.concrete_fields}
    key, client, due = named["broadcast"], named["client"], named["due_at"]
    fields = [key, client, named["status"], named["reason"], due]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = (
        f"INSERT INTO {meta.db_table} ({columns}) "  # noqa: S608 - the model's own names
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    broadcast_id = key.get_db_prep_save(broadcast.pk, connection)
    values = [
        (
            broadcast_id,
            client.get_db_prep_save(pk, connection),
            row_status,
            row_reason,
            due.get_db_prep_save(due_at, connection),
        )
        for pk, due_at, row_status, row_reason in rows
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(values), 5_000):
            cursor.executemany(sql, values[start : start + 5_000])


# --- Live progress and the completion webhook ----------------------------------------------


def broadcast_counts(broadcast: Broadcast) -> dict[str, Any]:
    return {
        "broadcast_id": str(broadcast.pk),
        "status": broadcast.status,
        "created_by": str(broadcast.created_by_id),
        "recipients": broadcast.recipients,
        "sent": broadcast.sent,
        "skipped": broadcast.skipped,
        "cancelled": broadcast.cancelled,
        "pending": broadcast.pending,
    }


def _progress(broadcasts: Iterable[Broadcast]) -> None:
    """One `broadcast.progress` staff event per broadcast: the live event's subject is the
    broadcast (not a client), so no client's stream gets it; the staff stream shows it to its
    creator and to users with *Send a broadcast* (messaging/streams.py). Last write of the
    transaction (the live-event order lock)."""
    live_events_record([(b.pk, "broadcast.progress", broadcast_counts(b)) for b in broadcasts])


def _completed_webhook(broadcast: Broadcast, now: datetime) -> None:
    if endpoint_get() is None:
        return
    delivery_create(
        channel=Channel.WEBHOOK,
        client=None,
        subject_id=uuid.uuid5(broadcast.pk, _COMPLETED),
        payload={
            "type": _COMPLETED,
            "timestamp": iso_utc(now),
            "data": {
                "broadcast": {
                    "id": str(broadcast.pk),
                    "status": broadcast.status,
                    "category": broadcast.category,
                    "created_at": iso_utc(broadcast.created_at),
                    "completed_at": iso_utc(broadcast.completed_at),
                    "recipients": broadcast.recipients,
                    "sent": broadcast.sent,
                    "skipped": broadcast.skipped,
                    "cancelled": broadcast.cancelled,
                    "pending": broadcast.pending,
                }
            },
        },
    )


# --- Sending: the worker's batches ---------------------------------------------------------


@dataclass
class _Batch:
    """What one batch decided, per broadcast."""

    writes: list[MessageWrite] = field(default_factory=list)
    write_rows: list[tuple[int, datetime]] = field(default_factory=list)  # (recipient, deliver_at)
    skips: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    cancelled: list[int] = field(default_factory=list)


def _claim(limit: int, now: datetime) -> list[tuple[int, uuid.UUID, uuid.UUID]]:
    queryset = BroadcastRecipient.objects.filter(
        status=RecipientStatus.PENDING, due_at__lte=now
    ).order_by("due_at", "id")
    if connection.features.has_select_for_update:
        queryset = queryset.select_for_update(skip_locked=True)
    return list(queryset.values_list("id", "broadcast_id", "client_id")[:limit])


def broadcasts_send_batch(*, limit: int = BATCH) -> int:
    """Write the messages of up to `limit` due recipients, in one transaction with their new
    status and the broadcasts' counts; returns how many recipients it settled (0: none due)."""
    with transaction.atomic():
        now = timezone.now()
        claimed = _claim(limit, now)
        if not claimed:
            return 0
        broadcasts = {
            b.pk: b
            # Only the broadcasts' rows: the creator and the template are read, not locked.
            for b in Broadcast.objects.select_for_update(of=("self",))
            .select_related("created_by", "template")
            .filter(pk__in={b for _, b, _ in claimed})
            .order_by("pk")
        }
        clients = Client.objects.in_bulk({c for _, _, c in claimed})
        settings = outreach_settings_get()
        default = zone_or_none(settings.default_timezone) or ZoneInfo("UTC")
        quiet = quiet_hours(settings)
        batches: dict[uuid.UUID, _Batch] = defaultdict(_Batch)
        texts = {pk: _text_of(b) for pk, b in broadcasts.items()}
        carried = broadcast_files(broadcasts)
        for recipient_id, broadcast_id, client_id in claimed:
            broadcast, client, batch = (
                broadcasts[broadcast_id],
                clients[client_id],
                batches[broadcast_id],
            )
            if broadcast.status in (BroadcastStatus.CANCELLED, BroadcastStatus.COMPLETED):
                batch.cancelled.append(recipient_id)  # never pending there; kept safe anyway
                continue
            if not client.is_active:
                batch.skips[SkipReason.INACTIVE].append(recipient_id)
                continue
            if broadcast.category == Category.OUTREACH and client.outreach_opt_out:
                batch.skips[SkipReason.OPTED_OUT].append(recipient_id)
                continue
            text = texts[broadcast_id]
            try:
                language, rendered = text.render(client)
            except RenderFailed:
                batch.skips[SkipReason.MISSING_VARIABLES].append(recipient_id)
                continue
            deliver_at = deliver_time(now, zone_of(client, default), quiet)
            batch.write_rows.append((recipient_id, deliver_at))
            batch.writes.append(
                MessageWrite(
                    client=client,
                    direction=Direction.OUT,
                    sender=broadcast.created_by,
                    body=rendered.body,
                    source=text.source(client)[1],
                    variables=rendered.variables,
                    template_version=text.version,
                    template_language=language if text.version else "",
                    expects_reply=broadcast.expects_reply,
                    meta=RequestMeta(),
                    category=Category(broadcast.category),
                    broadcast_id=broadcast.pk,
                    notify_at=deliver_at if deliver_at > now else None,
                    files=FilesToWrite(attachments=carried.get(broadcast_id, ())),
                )
            )
        # The counts first (the broadcasts' rows are held already), then the skips: the
        # writer takes the live-event lock last, after which only held rows change.
        for broadcast_id, batch in batches.items():
            broadcast = broadcasts[broadcast_id]
            broadcast.sent += len(batch.writes)
            broadcast.skipped += sum(len(ids) for ids in batch.skips.values())
            broadcast.cancelled += len(batch.cancelled)
            if broadcast.status == BroadcastStatus.SCHEDULED:
                broadcast.status = BroadcastStatus.SENDING
            if broadcast.pending == 0 and broadcast.status == BroadcastStatus.SENDING:
                broadcast.status = BroadcastStatus.COMPLETED
                broadcast.completed_at = now
                _completed_webhook(broadcast, now)
            broadcast.save(update_fields=["sent", "skipped", "cancelled", "status", "completed_at"])
            for reason, ids in batch.skips.items():
                BroadcastRecipient.objects.filter(pk__in=ids).update(
                    status=RecipientStatus.SKIPPED, reason=reason
                )
            if batch.cancelled:
                BroadcastRecipient.objects.filter(pk__in=batch.cancelled).update(
                    status=RecipientStatus.CANCELLED
                )
        writes = [w for batch in batches.values() for w in batch.writes]
        rows = [row for batch in batches.values() for row in batch.write_rows]
        results = messages_write(writes=writes)
        del results  # each message is found by its (broadcast, client), one statement per time
        written = Message.objects.filter(
            broadcast_id=OuterRef("broadcast_id"), client_id=OuterRef("client_id")
        ).values("id")[:1]
        by_time: dict[datetime, list[int]] = defaultdict(list)
        for recipient_id, deliver_at in rows:
            by_time[deliver_at].append(recipient_id)
        for deliver_at, recipient_ids in by_time.items():
            BroadcastRecipient.objects.filter(pk__in=recipient_ids).update(
                status=RecipientStatus.SENT, message_id=Subquery(written), deliver_at=deliver_at
            )
        _progress(broadcasts[pk] for pk in sorted(batches))
    return len(claimed)


def _text_of(broadcast: Broadcast) -> _Text:
    version = None
    if broadcast.template_id is not None and broadcast.template_version is not None:
        version = MessageTemplateVersion.objects.get(
            template_id=broadcast.template_id, version=broadcast.template_version
        )
    return _Text(body=broadcast.body, version=version, sender=broadcast.created_by)


def broadcasts_next_due_at() -> datetime | None:
    return (
        BroadcastRecipient.objects.filter(status=RecipientStatus.PENDING)
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )


def broadcasts_job(now: datetime) -> datetime | None:
    """The worker's job: batches for up to JOB_SECONDS, then back to deliveries; asks to run
    again at once while recipients are due, else at the next due time."""
    deadline = monotonic_time.monotonic() + JOB_SECONDS
    while monotonic_time.monotonic() < deadline:
        if broadcasts_send_batch() < BATCH:
            return broadcasts_next_due_at()
        if connection.vendor == "sqlite":
            # SQLite's one writer: a send waiting on the busy timeout polls the lock every few
            # milliseconds; a breath between batches lets it in before the next one.
            monotonic_time.sleep(SQLITE_BREATH)
    return timezone.now()


# --- Cancelling -----------------------------------------------------------------------------


def broadcast_cancel(*, actor: User, broadcast_id: uuid.UUID | str) -> Broadcast:
    """Every recipient whose message is not written yet becomes cancelled, in one statement
    that waits for a running batch's rows and then leaves them (written by then); after this
    returns nothing more is written for the broadcast. Conflict (409) when it is finished."""
    check_can_broadcast(actor)
    broadcast = broadcast_get(user=actor, broadcast_id=broadcast_id)
    _check_unfinished(broadcast)
    with transaction.atomic():
        count = BroadcastRecipient.objects.filter(
            broadcast=broadcast, status=RecipientStatus.PENDING
        ).update(status=RecipientStatus.CANCELLED)
        broadcast = Broadcast.objects.select_for_update().get(pk=broadcast.pk)
        if count == 0:
            _check_unfinished(broadcast)
        now = timezone.now()
        broadcast.cancelled += count
        broadcast.status = BroadcastStatus.CANCELLED
        broadcast.cancelled_at = now
        broadcast.cancelled_by = actor
        broadcast.save(update_fields=["cancelled", "status", "cancelled_at", "cancelled_by"])
        audit_append(
            actor=actor,
            action="broadcast.cancelled",
            object_type="broadcast",
            object_id=broadcast.pk,
            created_at=now,
            data={
                "cancelled": count,
                "sent": broadcast.sent,
                "skipped": broadcast.skipped,
                "recipients": broadcast.recipients,
            },
        )
        _progress([broadcast])
    return broadcast


def _check_unfinished(broadcast: Broadcast) -> None:
    if broadcast.status in (BroadcastStatus.COMPLETED, BroadcastStatus.CANCELLED):
        raise Conflict(f"This broadcast is {broadcast.status} already: nothing left to cancel.")


# --- Settings -------------------------------------------------------------------------------


def check_can_manage_settings(user: User) -> None:
    if not user.has_perm(OutreachPermission.MANAGE_OUTREACH_SETTINGS):
        raise PermissionDenied("Only administrators change the outreach settings.")


def _clock(value: Any, name: str) -> time:
    if not isinstance(value, str) or len(value) != 5 or not value.isascii():
        raise _invalid(name, "Must be a time as HH:MM, e.g. 21:00.")
    try:
        return time.fromisoformat(value)
    except ValueError as error:
        raise _invalid(name, "Must be a time as HH:MM, e.g. 21:00.") from error


def settings_representation(settings: OutreachSettings) -> dict[str, Any]:
    quiet = None
    if settings.quiet_hours_start is not None and settings.quiet_hours_end is not None:
        quiet = [
            settings.quiet_hours_start.strftime("%H:%M"),
            settings.quiet_hours_end.strftime("%H:%M"),
        ]
    return {
        "quiet_hours": quiet,
        "default_timezone": settings.default_timezone,
        "max_outreach_per_week": settings.max_outreach_per_week,
    }


def outreach_settings_update(*, actor: User, data: Any) -> OutreachSettings:
    """Replace the outreach settings (`quiet_hours` [start, end] or null, `default_timezone`,
    `max_outreach_per_week` or null); a ledger record with before and after."""
    check_can_manage_settings(actor)
    if not isinstance(data, dict):
        raise _invalid("body", "Send the settings as a JSON object.")
    unknown = [
        str(k)[:40]
        for k in data
        if k not in ("quiet_hours", "default_timezone", "max_outreach_per_week")
    ]
    if unknown:
        raise _invalid(unknown[0], "Not an outreach setting.")
    for name in ("quiet_hours", "default_timezone", "max_outreach_per_week"):
        if name not in data:
            raise _invalid(name, "This field is required.")
    quiet = data["quiet_hours"]
    start = end = None
    if quiet is not None:
        if not isinstance(quiet, list) or len(quiet) != 2:
            raise _invalid("quiet_hours", 'Must be ["HH:MM", "HH:MM"] (start, end) or null.')
        start, end = _clock(quiet[0], "quiet_hours"), _clock(quiet[1], "quiet_hours")
        if start == end:
            raise _invalid("quiet_hours", "Start and end must differ (null: no quiet hours).")
    zone = data["default_timezone"]
    if zone_or_none(zone) is None:
        raise _invalid("default_timezone", "Must be an IANA time zone, e.g. Europe/Berlin.")
    cap = data["max_outreach_per_week"]
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 1000
    ):
        raise _invalid("max_outreach_per_week", "Must be a whole number from 1 to 1000, or null.")
    with transaction.atomic():
        settings = OutreachSettings.objects.select_for_update().filter(pk=1).first()
        if settings is None:
            settings = outreach_settings_get()
        before = settings_representation(settings)
        settings.quiet_hours_start, settings.quiet_hours_end = start, end
        settings.default_timezone = zone
        settings.max_outreach_per_week = cap
        settings.updated_by = actor
        settings.save()
        audit_append(
            actor=actor,
            action="outreach.settings_updated",
            object_type="outreach_settings",
            object_id=1,
            created_at=timezone.now(),
            data={"before": before, "after": settings_representation(settings)},
        )
    return settings
