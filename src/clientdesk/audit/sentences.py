"""How ledger records and timeline events read to people: a sentence naming the clients, users
and templates involved (read in bulk, one query per kind per page), with the raw values beside
it, bounded, for the "Details" disclosure. The JSON API keeps serving the raw record.

Every interpolated value is escaped (`format_html`), cut to a bounded length and isolated in a
`<bdi>`, so a name in another script, or written to attack the page, cannot change the rest of
the sentence."""

import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityEvent, ActivityType, ActorType, AuditRecord
from clientdesk.clients.models import Client

NAME_LENGTH = 80
LIST_LENGTH = 5
RAW_LENGTH = 10_000  # of the data shown in "Details"; the API has all of it


def _cut(value: Any, length: int = NAME_LENGTH) -> str:
    return Truncator(str(value)).chars(length)


def _named(value: Any, length: int = NAME_LENGTH) -> SafeString:
    return format_html("<bdi>{}</bdi>", _cut(value, length))


def _quoted(value: Any) -> SafeString:
    return format_html("“<bdi>{}</bdi>”", _cut(value))


def _listed(values: Any) -> SafeString:
    """Up to LIST_LENGTH named values, and how many more."""
    items = list(values) if isinstance(values, list) else []
    if not items:
        return mark_safe("none")
    shown = format_html_join(", ", "{}", ((_named(v),) for v in items[:LIST_LENGTH]))
    more = len(items) - LIST_LENGTH
    return format_html("{} and {} more", shown, more) if more > 0 else shown


def _short_id(value: Any) -> str:
    return str(value)[:8] + "…" if len(str(value)) > 8 else str(value)


@dataclass
class Names:
    """Who and what a page of records names, looked up once for the whole page."""

    clients: dict[str, Client] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    # Template id -> [(sequence, name)], in ledger order: the name as each record saw it.
    templates: dict[str, list[tuple[int, str]]] = field(default_factory=dict)

    def client(self, client_id: Any) -> SafeString:
        client = self.clients.get(str(client_id))
        if client is None:
            return format_html("client <bdi>{}</bdi>", _short_id(client_id or "?"))
        return format_html(
            "<bdi>{}</bdi> ({})", _cut(client.full_name), _named(client.external_id, 64)
        )

    def user(self, user_id: Any, fallback: Any = None) -> SafeString:
        user = self.users.get(str(user_id))
        if user is not None:
            return _named(user.display_name)
        return _named(fallback) if fallback else format_html("user {}", _short_id(user_id))

    def template(self, template_id: Any, at: int) -> SafeString:
        names = [
            name for sequence, name in self.templates.get(str(template_id), []) if sequence <= at
        ]
        if names:
            return _quoted(names[-1])
        return format_html("template {}", _short_id(template_id))


def _uuids(values: Iterable[Any]) -> set[uuid.UUID]:
    found = set()
    for value in values:
        try:
            found.add(uuid.UUID(str(value)))
        except ValueError:
            continue
    return found


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _data(record: AuditRecord | ActivityEvent) -> dict[str, Any]:
    return _dict(record.data)


def _client_ids(record: AuditRecord) -> list[Any]:
    data = _data(record)
    filters = data.get("filters")
    return [
        data.get("client_id"),
        record.object_id if record.object_type == "client" else None,
        record.actor_id if record.actor_type == ActorType.CLIENT else None,
        filters.get("client") if isinstance(filters, dict) else None,
    ]


def _user_ids(record: AuditRecord) -> list[Any]:
    return [
        _data(record).get("user_id"),
        record.object_id if record.object_type == "user" else None,
    ]


def _template_ids(record: AuditRecord) -> list[Any]:
    return [
        _data(record).get("template_id"),
        record.object_id if record.object_type == "message_template" else None,
    ]


def record_names(records: Sequence[AuditRecord]) -> Names:
    """The clients, users and template names `records` mention: three queries at most."""
    names = Names()
    clients = _uuids(i for r in records for i in _client_ids(r) if i)
    if clients:
        rows = Client.objects.filter(pk__in=clients).only(
            "id", "first_name", "last_name", "external_id"
        )
        names.clients = {str(c.pk): c for c in rows}
    users = _uuids(i for r in records for i in _user_ids(r) if i)
    if users:
        rows_u = User.objects.filter(pk__in=users).only("id", "username", "first_name", "last_name")
        names.users = {str(u.pk): u for u in rows_u}
    templates = {str(t) for t in _uuids(i for r in records for i in _template_ids(r) if i)}
    if templates:
        # A template's names are in the ledger itself: at creation and at each rename.
        history = (
            AuditRecord.objects.filter(
                object_type="message_template",
                object_id__in=templates,
                action__in=["template.created", "template.updated"],
                data__has_key="name",
            )
            .order_by("sequence")
            .values_list("object_id", "sequence", "data__name")
        )
        for template_id, sequence, name in history:
            names.templates.setdefault(template_id, []).append((sequence, str(name)))
    return names


# --- one sentence per action ------------------------------------------------------------------

Sentence = Callable[[AuditRecord, Names, SafeString, dict[str, Any]], SafeString]


def _changed_fields(fields: Iterable[str]) -> str:
    return ", ".join(f.replace("_", " ") for f in list(fields)[:10])


def _message_sent(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
    sentence = format_html("{} sent a message to {}", actor, n.client(d.get("client_id")))
    if d.get("template_id"):
        version = d.get("template_version")
        sentence = format_html(
            "{} from template {}{}",
            sentence,
            n.template(d["template_id"], r.sequence),
            format_html(" (version {})", version) if version else "",
        )
    return sentence


def _message_received(r: AuditRecord, n: Names, actor: SafeString, d: Any) -> SafeString:
    client = n.client(r.actor_id)
    if d.get("in_reply_to"):
        return format_html("{} replied to a message", client)
    return format_html("{} wrote a message", client)


def _exported(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
    filters = _dict(d.get("filters"))
    said = []
    for key, label in [("since", "from"), ("until", "until"), ("sender", "sent by")]:
        if filters.get(key):
            said.append(format_html("{} {}", label, _named(filters[key], 40)))
    if filters.get("client"):
        said.append(format_html("to {}", n.client(filters["client"])))
    if filters.get("direction"):
        said.append(format_html("direction {}", _named(filters["direction"], 10)))
    sentence = format_html(
        "{} exported {} as {} ({})",
        actor,
        _count(d.get("rows"), "message"),
        _named(filters.get("format") or "a file", 10),
        _named(d.get("via") or "?", 40),
    )
    if said:
        sentence = format_html(
            "{}, {}", sentence, format_html_join(", ", "{}", ((s,) for s in said))
        )
    # An export that ended early is recorded too: say so (docs/API.md, the record's outcome).
    if d.get("outcome") == "failed":
        sentence = format_html("{}; it failed ({})", sentence, _named(d.get("error") or "?", 40))
    elif d.get("outcome") == "client_disconnected":
        sentence = format_html("{}; the client left before the end", sentence)
    return sentence


def _template_updated(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
    what = []
    if "name" in d:
        what.append(format_html("renamed it {}", _quoted(d["name"])))
    if "is_active" in d:
        what.append(mark_safe("activated it" if d["is_active"] else "deactivated it"))  # noqa: S308
    if "expects_reply" in d:
        said = "messages from it expect a reply" if d["expects_reply"] else "no reply expected"
        what.append(mark_safe(said))  # noqa: S308 - constants
    if "version" in d:
        what.append(format_html("new text (version {})", d["version"]))
    before = n.template(r.object_id, r.sequence - 1)
    return format_html(
        "{} changed template {}: {}",
        actor,
        before,
        format_html_join("; ", "{}", ((w,) for w in what)),
    )


def _client_changed(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
    after = _dict(d.get("after"))
    client = n.client(r.object_id)
    if set(after) == {"is_active"}:
        verb = "reactivated" if after["is_active"] else "deactivated"
        return format_html("{} {} client {}", actor, verb, client)
    return format_html("{} changed client {}: {}", actor, client, _changed_fields(after))


def _consent_changed(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
    off = bool(_dict(d.get("after")).get("outreach_opt_out"))
    verb = "turned outreach off for" if off else "turned outreach back on for"
    if r.actor_type == ActorType.CLIENT:
        verb = "turned outreach off" if off else "turned outreach back on"
        return format_html("{} {} ({})", actor, verb, _named(d.get("via") or "?", 40))
    return format_html(
        "{} {} {} ({})", actor, verb, n.client(r.object_id), _named(d.get("via") or "?", 40)
    )


def _user_changed(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
    after = _dict(d.get("after"))
    who = n.user(r.object_id, d.get("username"))
    flags = {
        "is_active": ("reactivated {}", "deactivated {}"),
        "is_superuser": ("made {} a superuser", "took superuser rights from {}"),
        "is_staff": ("let {} into the admin", "shut {} out of the admin"),
    }
    said = [format_html(flags[f][0] if after[f] else flags[f][1], who) for f in flags if f in after]
    rest = [f for f in after if f not in flags]
    if rest:
        said.append(format_html("changed {} of {}", _changed_fields(rest), who))
    return format_html("{} {}", actor, format_html_join("; ", "{}", ((s,) for s in said)))


def _permissions(d: dict[str, Any]) -> SafeString:
    return format_html("added {}; removed {}", _listed(d.get("added")), _listed(d.get("removed")))


def _endpoint(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
    state = "enabled" if d.get("enabled") else "disabled"
    verb = "set up" if r.action == "endpoint.created" else "changed"
    return format_html(
        "{} {} the outgoing webhook endpoint: {} ({})",
        actor,
        verb,
        _named(d.get("url"), 120),
        state,
    )


def _tested(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
    if d.get("error"):
        outcome = format_html("failed: {}", _named(d["error"], 120))
    else:
        outcome = format_html("HTTP {}", _named(d.get("status_code"), 10))
    return format_html("{} sent a test event to the webhook endpoint: {}", actor, outcome)


def _number(value: Any) -> Any:
    """8.0 reads as 8."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _count(value: Any, noun: str) -> SafeString:
    plural = "" if _number(value) == 1 else "s"
    return format_html("{} {}{}", _named(_number(value), 20), noun, plural)


def _policy(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
    return format_html(
        "{} changed the follow-up policy: replies due in {}, responses in {}, time zone {}",
        actor,
        _count(d.get("reply_window_hours"), "business hour"),
        _count(d.get("response_window_hours"), "business hour"),
        _named(d.get("timezone"), 60),
    )


def _outreach_settings(
    r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]
) -> SafeString:
    after = _dict(d.get("after"))
    quiet = after.get("quiet_hours")
    hours = "–".join(str(t) for t in quiet) if isinstance(quiet, list) else "none"
    cap = after.get("max_outreach_per_week")
    return format_html(
        "{} changed the outreach settings: quiet hours {}, default time zone {}, {}",
        actor,
        _named(hours, 20),
        _named(after.get("default_timezone"), 60),
        format_html("at most {} outreach messages a week", _named(cap, 20))
        if cap
        else "no weekly cap",
    )


def _simple(text: str, *keys: str) -> Sentence:
    """A sentence whose values come straight from the record's data, each one bounded."""

    def sentence(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
        return format_html(text, actor, *(_named(d.get(key, "?")) for key in keys))

    return sentence


def _client_sentence(text: str) -> Sentence:
    def sentence(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
        return format_html(text, actor, n.client(r.object_id))

    return sentence


def _user_sentence(text: str, *keys: str) -> Sentence:
    def sentence(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
        who = n.user(r.object_id, d.get("username"))
        return format_html(text, actor, who, *(_named(d.get(k, "?")) for k in keys))

    return sentence


def _token_sentence(verb: str) -> Sentence:
    """`verb`: "issued … for", "revoked … of"."""

    def sentence(r: AuditRecord, n: Names, actor: SafeString, d: dict[str, Any]) -> SafeString:
        return format_html(
            "{} {} {}",
            actor,
            format_html(verb, _named(d.get("prefix"), 12)),
            n.user(d.get("user_id")),
        )

    return sentence


@dataclass(frozen=True)
class Action:
    label: str  # for the Audit page's filter
    sentence: Sentence


ACTIONS: Mapping[str, Action] = {
    "message.sent": Action("Message sent", _message_sent),
    "message.received": Action("Reply from a client", _message_received),
    "message.read": Action(
        "Message read", lambda r, n, a, d: format_html("{} read a message", n.client(r.actor_id))
    ),
    "messages.exported": Action("Messages exported", _exported),
    "template.created": Action("Template created", _simple("{} created template “{}”", "name")),
    "template.updated": Action("Template changed", _template_updated),
    "client.created": Action("Client added", _client_sentence("{} added client {}")),
    "client.changed": Action("Client changed", _client_changed),
    "client.consent_changed": Action("Outreach consent changed", _consent_changed),
    "clients.imported": Action(
        "Clients imported",
        lambda r, n, a, d: format_html("{} imported {}", a, _count(d.get("count"), "client")),
    ),
    "api_token.created": Action("API token issued", _token_sentence("issued API token {}… for")),
    "api_token.revoked": Action("API token revoked", _token_sentence("revoked API token {}… of")),
    "user.created": Action("Staff user added", _user_sentence("{} added staff user {}")),
    "user.changed": Action("Staff user changed", _user_changed),
    "user.password_changed": Action(
        "Password changed",
        lambda r, n, a, d: format_html(
            "{} set a new password for {}"
            if d.get("usable")
            else "{} turned off password sign-in for {}",
            a,
            n.user(r.object_id, d.get("username")),
        ),
    ),
    "user.roles_changed": Action(
        "Roles changed",
        lambda r, n, a, d: format_html(
            "{} changed the roles of {} from {} to {}",
            a,
            n.user(r.object_id, d.get("username")),
            _listed(d.get("before")),
            _listed(d.get("after")),
        ),
    ),
    "user.permissions_changed": Action(
        "User permissions changed",
        lambda r, n, a, d: format_html(
            "{} changed the permissions of {}: {}",
            a,
            n.user(r.object_id, d.get("username")),
            _permissions(d),
        ),
    ),
    "role.created": Action("Role created", _simple("{} created role {}", "role")),
    "role.renamed": Action("Role renamed", _simple("{} renamed role {} to {}", "before", "after")),
    "role.permissions_changed": Action(
        "Role permissions changed",
        lambda r, n, a, d: format_html(
            "{} changed the permissions of role {}: {}", a, _named(d.get("role")), _permissions(d)
        ),
    ),
    "user.invited": Action(
        "Staff user invited",
        _user_sentence("{} sent {} an invitation to {}, valid until {}", "email", "valid_until"),
    ),
    "user.sessions_ended": Action(
        "Sessions ended",
        lambda r, n, a, d: format_html(
            "{} ended {} of {}", a, _count(d.get("sessions"), "session"), n.user(r.object_id)
        ),
    ),
    "user.two_factor_enabled": Action(
        "Two-factor sign-in turned on", _user_sentence("{} turned on two-factor sign-in for {}")
    ),
    "user.two_factor_disabled": Action(
        "Two-factor sign-in turned off", _user_sentence("{} turned off two-factor sign-in for {}")
    ),
    "user.recovery_code_used": Action(
        "Recovery code used",
        _simple("{} signed in with a recovery code ({} left)", "left"),
    ),
    "user.recovery_codes_renewed": Action(
        "Recovery codes renewed", _user_sentence("{} made new recovery codes for {}")
    ),
    "login.lockout_reset": Action(
        "Sign-in lockout lifted",
        _simple("{} lifted the sign-in lockout of {} from {}", "username", "ip_address"),
    ),
    "endpoint.created": Action("Webhook endpoint set up", _endpoint),
    "endpoint.updated": Action("Webhook endpoint changed", _endpoint),
    "endpoint.secret_rotated": Action(
        "Webhook secret rotated", _simple("{} rotated the webhook signing secret")
    ),
    "endpoint.disabled": Action(
        "Webhook endpoint disabled",
        _simple("{} disabled the outgoing webhook endpoint: {}", "reason"),
    ),
    "endpoint.tested": Action("Webhook endpoint tested", _tested),
    "delivery.retried": Action(
        "Delivery retried", _simple("{} retried a {} delivery of a message", "channel")
    ),
    "followup.policy_updated": Action("Follow-up policy changed", _policy),
    "broadcast.created": Action(
        "Broadcast created",
        lambda r, n, a, d: format_html(
            "{} created a {} broadcast to {}",
            a,
            _named(d.get("category"), 20),
            _count(d.get("recipients"), "client"),
        ),
    ),
    "broadcast.cancelled": Action(
        "Broadcast cancelled",
        lambda r, n, a, d: format_html(
            "{} cancelled a broadcast: {} not sent, {} sent before",
            a,
            _count(d.get("cancelled"), "message"),
            _named(d.get("sent"), 20),
        ),
    ),
    "outreach.settings_updated": Action("Outreach settings changed", _outreach_settings),
    "portal.session_issued": Action(
        "Portal session opened", _client_sentence("{} opened a client portal session for {}")
    ),
    "portal.link_created": Action(
        "Sign-in link created", _client_sentence("{} created a portal sign-in link for {}")
    ),
    "portal.session_refreshed": Action(
        "Portal session renewed",
        lambda r, n, a, d: format_html("{} renewed their portal session", a),
    ),
    "portal.session_ended": Action(
        "Signed out of the portal", lambda r, n, a, d: format_html("{} signed out of the portal", a)
    ),
}


def action_label(action: str) -> str:
    known = ACTIONS.get(action)
    return known.label if known else action


def _actor(record: AuditRecord, names: Names) -> SafeString:
    if record.actor_type == ActorType.CLIENT:
        return names.client(record.actor_id)
    return _named(record.actor_label)


def record_sentence(record: AuditRecord, names: Names) -> SafeString:
    """One sentence for a ledger record; an action without one (a newer Clientdesk's) still
    reads, by its name."""
    actor = _actor(record, names)
    known = ACTIONS.get(record.action)
    if known is None:
        return format_html("{}: {}", actor, _named(record.action))
    try:
        return known.sentence(record, names, actor, _data(record))
    except (KeyError, TypeError, ValueError, AttributeError):
        # A record written by an older version with other data: its action still says what.
        return format_html("{}: {}", actor, known.label)


def record_sentences(records: Sequence[AuditRecord]) -> list[SafeString]:
    names = record_names(records)
    return [record_sentence(record, names) for record in records]


# --- the client's timeline ----------------------------------------------------------------


def _event_actor(event: ActivityEvent) -> SafeString:
    return _named(event.actor_label)


def _channel(event: ActivityEvent) -> SafeString:
    return _named(_data(event).get("channel", "?"), 20)


# Each begins with the event type's own label, which the timeline has always shown.
ACTIVITY_SENTENCES: Mapping[str, Callable[[ActivityEvent], SafeString]] = {
    ActivityType.MESSAGE_SENT: lambda e: format_html("Message sent by {}", _event_actor(e)),
    ActivityType.REPLY_RECEIVED: lambda e: format_html(
        "Reply from the client, {}", _event_actor(e)
    ),
    ActivityType.MESSAGE_READ: lambda e: format_html("Read by the client, {}", _event_actor(e)),
    ActivityType.MESSAGE_DELIVERED: lambda e: format_html("Message delivered by {}", _channel(e)),
    ActivityType.DELIVERY_FAILED: lambda e: format_html("Delivery failed by {}", _channel(e)),
    ActivityType.REPLY_OVERDUE: lambda e: mark_safe(
        "Reply overdue: the client has not answered in time"
    ),
    ActivityType.RESPONSE_OVERDUE: lambda e: mark_safe(
        "Response overdue: the client's message waits for an answer"
    ),
    ActivityType.CONSENT_CHANGED: lambda e: format_html(
        "Outreach consent changed by {}: {}",
        _event_actor(e),
        "outreach off" if _data(e).get("outreach_opt_out") else "outreach on",
    ),
    ActivityType.PUSH_SUBSCRIPTION_EXPIRED: lambda e: format_html(
        "Push subscription expired: the push service answered {} for a device, which no "
        "longer gets notifications",
        _named(str(_data(e).get("status_code", "?")), 5),
    ),
}


def activity_sentence(event: ActivityEvent) -> SafeString:
    sentence = ACTIVITY_SENTENCES.get(event.type)
    if sentence is None:
        return format_html("{} by {}", event.get_type_display(), _event_actor(event))
    return sentence(event)


def raw_json(data: Any) -> str:
    """The data as indented JSON, cut to RAW_LENGTH characters."""
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > RAW_LENGTH:
        return text[:RAW_LENGTH] + f"\n… ({len(text) - RAW_LENGTH:,} more characters in the API)"
    return text


@dataclass(frozen=True)
class RecordRow:
    record: AuditRecord
    sentence: SafeString
    data: str


def record_rows(records: Sequence[AuditRecord]) -> list[RecordRow]:
    """The Audit page's rows: each record's sentence and its raw data."""
    return [
        RecordRow(record, sentence, raw_json(record.data))
        for record, sentence in zip(records, record_sentences(records), strict=True)
    ]


def activity_details(event: ActivityEvent) -> str:
    """The event's raw data but the message body, which the card shows already."""
    data = _data(event)
    return raw_json({k: v for k, v in data.items() if k != "body"})
