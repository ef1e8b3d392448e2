"""Files on messages and document requests: what an author may attach or ask for (checked before
the write, writing nothing), and the rows the one writer adds for them, a statement per kind for
a whole batch.

A staff message may carry at most `MAX_ATTACHMENTS` files and ask for at most
`MAX_DOCUMENT_REQUESTS` documents. A client's reply may carry files and answer open requests of
messages to that client (`fulfils`: request id → file id, at most 5); each file answering a
request is an attachment of the reply too, so every listing, the ledger and the export show
it."""

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.textcheck import text_problem
from clientdesk.files.errors import UnknownAttachments
from clientdesk.files.models import StoredFile
from clientdesk.files.services import files_bind, files_for_attachment
from clientdesk.messaging.models import (
    BroadcastFile,
    Direction,
    DocumentRequest,
    DocumentStatus,
    Message,
    MessageAttachment,
)
from clientdesk.messaging.selectors import MessageFiles

MAX_ATTACHMENTS = 5
MAX_DOCUMENT_REQUESTS = 10
MAX_LABEL = 200
# Bidi embeddings, overrides and isolates: left open in a label, they would reverse the words
# shown after it (file names lose them in `files.names`). The direction marks U+200E/U+200F
# change no neighbour and stay.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Fulfil:
    """A client's upload answering one open document request."""

    request: DocumentRequest
    file: StoredFile


def _ids(value: Any, *, field: str, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationFailed(
            f"{field} must be a list of file ids.", errors={field: ["A list of file ids."]}
        )
    if len(value) > limit:
        raise ValidationFailed(
            f"At most {limit} files per message; this one has {len(value)}.",
            errors={field: [f"At most {limit} files."]},
        )
    ids = [str(v) for v in value]
    if len(set(ids)) != len(ids):
        raise ValidationFailed(
            "The same file is attached twice.", errors={field: ["Each file once."]}
        )
    return ids


def attachments_check(
    ids: Any, *, user: User | None = None, client: Client | None = None
) -> tuple[StoredFile, ...]:
    """The files a staff user (`user`) or a client (`client`) may attach, in the order given:
    their own uploads only. Anything else is 422 naming `attachments`, as a file that does not
    exist is: nothing tells one from the other."""
    wanted = _ids(ids, field="attachments", limit=MAX_ATTACHMENTS)
    if not wanted:
        return ()
    return tuple(files_for_attachment(ids=wanted, user=user, client=client))


def document_requests_check(value: Any) -> tuple[str, ...]:
    """The labels of the documents a staff message asks for: `[{"label": ...}, ...]` or plain
    labels (a template's list); at most 10, each 1 to 200 characters of text."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ValidationFailed(
            'document_requests must be a list like [{"label": "Passport"}].',
            errors={"document_requests": ["A list of {label} objects."]},
        )
    if len(value) > MAX_DOCUMENT_REQUESTS:
        raise ValidationFailed(
            f"At most {MAX_DOCUMENT_REQUESTS} document requests per message; "
            f"this one has {len(value)}.",
            errors={"document_requests": [f"At most {MAX_DOCUMENT_REQUESTS}."]},
        )
    labels = []
    for index, item in enumerate(value):
        label = item.get("label") if isinstance(item, dict) else item
        name = f"document_requests[{index}].label"
        if not isinstance(label, str) or not label.strip():
            raise ValidationFailed(
                f"{name}: give the document's name, e.g. Passport.",
                errors={name: ["A non-blank label."]},
            )
        label = label.strip()
        if problem := text_problem(label):
            raise ValidationFailed(f"{name} {problem}", errors={name: [problem]})
        if control := _BIDI_CONTROLS.search(label):
            problem = f"must not contain the bidi control U+{ord(control.group()):04X}."
            raise ValidationFailed(f"{name} {problem}", errors={name: [problem]})
        if len(label) > MAX_LABEL:
            raise ValidationFailed(
                f"{name} is {len(label)} characters; the limit is {MAX_LABEL}.",
                errors={name: [f"At most {MAX_LABEL} characters."]},
            )
        labels.append(label)
    return tuple(labels)


def fulfils_check(value: Any, *, client: Client) -> tuple[Fulfil, ...]:
    """A client's answers to document requests: each request open and on a message to this
    client, each file the client's own upload, no file for two requests. A request that is
    unknown or someone else's reads as unknown."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValidationFailed(
            "fulfils must be an object of request id → file id.",
            errors={"fulfils": ["An object {request_id: file_id}."]},
        )
    if len(value) > MAX_ATTACHMENTS:
        raise ValidationFailed(
            f"At most {MAX_ATTACHMENTS} documents per reply; send the rest in another.",
            errors={"fulfils": [f"At most {MAX_ATTACHMENTS}."]},
        )
    if not value:
        return ()
    request_ids: list[uuid.UUID] = []
    for key in value:
        try:
            request_ids.append(uuid.UUID(str(key)))
        except ValueError as error:
            raise _unknown_request(key) from error
    file_ids = [str(v) for v in value.values()]
    if len(set(file_ids)) != len(file_ids):
        raise ValidationFailed(
            "One file answers one request: the same file is given twice.",
            errors={"fulfils": ["Each file once."]},
        )
    try:
        requests = {
            r.id: r
            for r in DocumentRequest.objects.filter(
                pk__in=request_ids, message__client=client, message__direction=Direction.OUT
            )
        }
    except DjangoValidationError as error:
        raise _unknown_request("") from error
    for request_id, key in zip(request_ids, value, strict=True):
        found = requests.get(request_id)
        if found is None:
            raise _unknown_request(key)
        if found.status != DocumentStatus.OPEN:
            raise ValidationFailed(
                f"The request {found.label!r} was already answered.",
                errors={f"fulfils.{key}": ["Already received."]},
            )
    try:
        files = files_for_attachment(ids=file_ids, client=client)
    except UnknownAttachments as error:
        raise ValidationFailed(
            error.detail, errors={"fulfils": error.extra.get("errors", {}).get("attachments", [])}
        ) from error
    return tuple(
        Fulfil(request=requests[rid], file=f) for rid, f in zip(request_ids, files, strict=True)
    )


def _unknown_request(key: Any) -> ValidationFailed:
    shown = str(key)[:64]
    return ValidationFailed(
        f"No open document request {shown!r} for you.",
        errors={f"fulfils.{shown}": ["No such document request."]},
    )


@dataclass(frozen=True)
class FilesToWrite:
    """The files part of one `MessageWrite`."""

    attachments: Sequence[StoredFile] = ()
    document_requests: Sequence[str] = ()
    fulfils: Sequence[Fulfil] = ()

    def __bool__(self) -> bool:
        return bool(self.attachments or self.document_requests or self.fulfils)


class RequestAlreadyAnswered(ValidationFailed):
    """Another reply answered the request between the check and the write."""


def message_files_write(
    messages: Sequence[Message], wanted: Sequence[FilesToWrite], *, now: datetime
) -> dict[uuid.UUID, MessageFiles]:
    """Inside the writer's transaction, with the clients locked: bind each file to its
    recipient, write the attachments and document requests (one insert each for the batch) and
    receive the answered requests. Returns what each written message carries, by id."""
    carried: dict[uuid.UUID, MessageFiles] = {}
    if not any(wanted):
        return carried
    pairs = [
        (file, message.client)
        for message, want in zip(messages, wanted, strict=True)
        for file in _carried_files(want)
    ]
    bound = iter(files_bind(pairs, now=now))
    attachments: list[MessageAttachment] = []
    requests: list[DocumentRequest] = []
    for message, want in zip(messages, wanted, strict=True):
        files = [next(bound) for _ in _carried_files(want)]
        attachments += [
            MessageAttachment(message=message, file=f, position=n) for n, f in enumerate(files)
        ]
        asked = [
            DocumentRequest(message=message, position=n, label=label)
            for n, label in enumerate(want.document_requests)
        ]
        requests += asked
        if files or asked:
            carried[message.id] = MessageFiles(attachments=files, document_requests=asked)
        for fulfil in want.fulfils:
            _receive(fulfil, message=message, now=now)
    if attachments:
        MessageAttachment.objects.bulk_create(attachments)
    if requests:
        DocumentRequest.objects.bulk_create(requests)
    return carried


def _carried_files(want: FilesToWrite) -> list[StoredFile]:
    """The reply's attachments: those given, then each file answering a request."""
    files = list(want.attachments)
    files += [f.file for f in want.fulfils if f.file not in files]
    return files


def _receive(fulfil: Fulfil, *, message: Message, now: datetime) -> None:
    """One request received; a request answered meanwhile (a concurrent reply) refuses the whole
    write, which rolls back."""
    changed = DocumentRequest.objects.filter(
        pk=fulfil.request.pk, status=DocumentStatus.OPEN
    ).update(
        status=DocumentStatus.RECEIVED, file=fulfil.file, received_at=now, received_message=message
    )
    if not changed:
        raise RequestAlreadyAnswered(
            f"The request {fulfil.request.label!r} was already answered.",
            errors={f"fulfils.{fulfil.request.pk}": ["Already received."]},
        )


def broadcast_files_attach(
    *, broadcast_id: uuid.UUID, files: Sequence[StoredFile], now: datetime
) -> None:
    """Keep a broadcast's files until its recipients' messages are written (inside the
    transaction that creates it): marked attached, so the cleanup of unattached uploads leaves
    them; each recipient gets its own copy when its message is written."""
    if not files:
        return
    BroadcastFile.objects.bulk_create(
        BroadcastFile(broadcast_id=broadcast_id, file=f, position=n) for n, f in enumerate(files)
    )
    StoredFile.objects.filter(pk__in=[f.pk for f in files], attached_at__isnull=True).update(
        attached_at=now
    )
