"""Writes of the files app: store an upload, pick and bind attachments, signed links, and the
cleanup of uploads never attached."""

import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.core import signing
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.files import scanning
from clientdesk.files.errors import (
    FileEmpty,
    FileQuotaExceeded,
    FileRateLimited,
    FileRefused,
    FileTooLarge,
    SignedUrlExpired,
    SignedUrlRefused,
    UnknownAttachments,
)
from clientdesk.files.models import StoredBlob, StoredFile
from clientdesk.files.names import name_clean
from clientdesk.files.sniffing import sniff
from clientdesk.files.storage import files_storage, object_name

__all__ = [
    "MAX_ATTACHMENTS",
    "FileRefused",
    "file_bind",
    "file_from_signed_token",
    "file_open",
    "file_signed_url",
    "file_store",
    "files_bind",
    "files_cleanup",
    "files_cleanup_job",
    "files_for_attachment",
]

MAX_ATTACHMENTS = 5
CHUNK = 64 * 1024
UNATTACHED_HOURS = 24
CLEANUP_BATCH = 500
SIGNED_URL_SALT = "clientdesk.files.signed-url"


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    stream.seek(0)
    while chunk := stream.read(CHUNK):
        yield chunk


def _digest(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in _chunks(stream):
        digest.update(chunk)
    return digest.hexdigest()


def _check_client_limits(*, client: Client, size: int) -> None:
    """A client's own uploads: so many an hour, so many bytes in all (settings). Checked first
    without a lock, to refuse before reading the bytes, and again in `file_store` under the
    client's row lock, where racing uploads of the client take turns."""
    now = timezone.now()
    own = StoredFile.objects.filter(client=client, uploaded_by__isnull=True)
    recent = own.filter(created_at__gte=now - timedelta(hours=1))
    per_hour = settings.FILES_CLIENT_UPLOADS_PER_HOUR
    if recent.count() >= per_hour:
        oldest = recent.order_by("created_at").values_list("created_at", flat=True).first()
        wait = 60 if oldest is None else (oldest + timedelta(hours=1) - now).total_seconds()
        raise FileRateLimited(
            f"At most {per_hour} uploads an hour: try again later.",
            retry_after=max(1, int(wait) + 1),
        )
    total = own.aggregate(total=Sum("size"))["total"] or 0
    if total + size > settings.FILES_CLIENT_TOTAL_BYTES:
        limit_mb = settings.FILES_CLIENT_TOTAL_BYTES // (1024 * 1024)
        raise FileQuotaExceeded(
            f"Your uploads would pass {limit_mb} MB in all; the file was not accepted."
        )


def file_check(*, upload: UploadedFile, client: Client | None = None) -> tuple[str, str, str]:
    """(cleaned name, content type, hex SHA-256) of an upload that may be stored, or FileRefused;
    writes nothing."""
    name = name_clean(upload.name or "")
    size = upload.size or 0
    if size == 0:
        raise FileEmpty("The file is empty.")
    limit = settings.FILES_MAX_BYTES
    if size > limit:
        raise FileTooLarge(
            f"The file is {size:,} bytes; the most is {limit // (1024 * 1024)} MB.",
            max_bytes=limit,
        )
    if client is not None:
        _check_client_limits(client=client, size=size)
    stream: IO[bytes] = upload.file  # type: ignore[assignment]
    sniffed = sniff(stream, size=size, name=name)
    if settings.FILES_CLAMD_SOCKET:
        scanning.scan(address=settings.FILES_CLAMD_SOCKET, chunks=_chunks(stream))
    sha256 = getattr(upload, "sha256", "") or _digest(stream)
    return name, sniffed.content_type, sha256


def _blob_save(*, sha256: str, upload: UploadedFile) -> None:
    upload.seek(0)
    files_storage().save(object_name(sha256), upload)


def _blob_lock(*, sha256: str, size: int, now: datetime) -> None:
    """Lock the blob row of `sha256`, created when missing (also when a cleanup deleted it
    while this waited for its lock)."""
    while True:
        StoredBlob.objects.bulk_create(
            [StoredBlob(sha256=sha256, size=size, created_at=now)], ignore_conflicts=True
        )
        if StoredBlob.objects.select_for_update().filter(sha256=sha256).first() is not None:
            return


def file_store(
    *, upload: UploadedFile, user: User | None = None, client: Client | None = None
) -> StoredFile:
    """Check an upload (size, the client's limits, content, virus scan), keep its bytes under
    their hash, and write its row. A staff upload (`user`) belongs to no client until it is
    attached; a client's own (`client`, no user) belongs to that client."""
    if (user is None) == (client is None):
        raise ValueError("file_store takes a user or a client")
    name, content_type, sha256 = file_check(upload=upload, client=client)
    size = upload.size or 0
    storage = files_storage()
    key = object_name(sha256)
    # The bytes first, outside any transaction (a slow bucket holds no lock) ...
    if not storage.exists(key):
        _blob_save(sha256=sha256, upload=upload)
    refused: FileRefused | None = None
    with transaction.atomic():
        if client is not None:
            # The client's uploads take turns from here (its row is the lock the writer of
            # messages takes first too), so the limits count every upload before this one.
            Client.objects.select_for_update().filter(pk=client.pk).first()
        now = timezone.now()
        # ... then the blob row, locked: the cleanup removes bytes only while it holds this
        # lock and sees no file row, so bytes it removed meanwhile are written again here.
        _blob_lock(sha256=sha256, size=size, now=now)
        if client is not None:
            try:
                _check_client_limits(client=client, size=size)
            except FileRefused as error:
                refused = error
        if refused is None:
            if not storage.exists(key):
                _blob_save(sha256=sha256, upload=upload)
            return StoredFile.objects.create(
                sha256=sha256,
                name=name,
                size=size,
                content_type=content_type,
                uploaded_by=user,
                client=client,
                created_at=now,
            )
        # Refused after the bytes were written: they go unless a file row uses them (the blob
        # lock is held, as the cleanup holds it).
        if not StoredFile.objects.filter(sha256=sha256).exists():
            storage.delete(key)
            StoredBlob.objects.filter(sha256=sha256).delete()
    raise refused


def _parse_ids(ids: Iterable[Any]) -> list[uuid.UUID]:
    listed = list(ids)
    if len(listed) > MAX_ATTACHMENTS:
        raise UnknownAttachments(
            f"At most {MAX_ATTACHMENTS} attachments per message.",
            errors={"attachments": [f"At most {MAX_ATTACHMENTS} files."]},
        )
    parsed: list[uuid.UUID] = []
    bad: list[str] = []
    for value in listed:
        try:
            parsed.append(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
        except (ValueError, AttributeError, TypeError):
            bad.append(str(value)[:64])
    if bad:
        raise UnknownAttachments(
            f"Not file ids: {', '.join(bad)}.",
            errors={"attachments": [f"Not a file id: {b}" for b in bad]},
        )
    if len(set(parsed)) != len(parsed):
        raise UnknownAttachments(
            "A file is listed twice in the attachments.",
            errors={"attachments": ["A file is listed twice."]},
        )
    return parsed


def files_for_attachment(
    *, ids: Iterable[Any], user: User | None = None, client: Client | None = None
) -> list[StoredFile]:
    """The files `ids` names, in that order, if the author may attach each: a staff user the
    files they uploaded, a client its own uploads. Any other id (unknown, someone else's) is
    refused alike, naming it, so nothing about others' files leaks."""
    if (user is None) == (client is None):
        raise ValueError("files_for_attachment takes a user or a client")
    parsed = _parse_ids(ids)
    if not parsed:
        return []
    rows = StoredFile.objects.filter(pk__in=parsed).select_related("client")
    if user is not None:
        rows = rows.filter(uploaded_by=user)
    else:
        rows = rows.filter(client=client, uploaded_by__isnull=True)
    found = {row.pk: row for row in rows}
    missing = [str(pk) for pk in parsed if pk not in found]
    if missing:
        raise UnknownAttachments(
            f"No file you may attach has the id {', '.join(missing)}: upload it first.",
            errors={"attachments": [f"Unknown file: {pk}" for pk in missing]},
        )
    return [found[pk] for pk in parsed]


def file_bind(*, file: StoredFile, client: Client) -> StoredFile:
    """The row of `file`'s bytes that belongs to `client`, marked attached: `file` itself when
    it belongs to no client yet (or already to this one), else a new row with the same
    content, for this client (`files_bind` for one)."""
    with transaction.atomic():
        (row,) = files_bind([(StoredFile.objects.get(pk=file.pk), client)], now=timezone.now())
    row.refresh_from_db()
    return row


def files_bind(pairs: Sequence[tuple[StoredFile, Client]], *, now: datetime) -> list[StoredFile]:
    """Each file as its recipient's own, for a whole batch (a broadcast's recipients) in a
    statement per distinct file and one insert: a file that belongs to no client yet becomes
    its first recipient's; a file already the recipient's stays itself; any other recipient
    gets a row of its own over the same bytes. Every row used is marked attached, so the
    cleanup of unattached uploads leaves it."""
    bound: list[StoredFile] = []
    copies: list[StoredFile] = []
    owner: dict[uuid.UUID, uuid.UUID | None] = {}
    for file, client in pairs:
        if file.id not in owner:
            owner[file.id] = file.client_id
            if file.client_id is None:
                claimed = StoredFile.objects.filter(pk=file.pk, client__isnull=True).update(
                    client=client, attached_at=now
                )
                if claimed:
                    owner[file.id] = client.id
            else:
                StoredFile.objects.filter(pk=file.pk, attached_at__isnull=True).update(
                    attached_at=now
                )
        if owner[file.id] == client.id:
            bound.append(file)
            continue
        copy = StoredFile(
            sha256=file.sha256,
            name=file.name,
            size=file.size,
            content_type=file.content_type,
            uploaded_by_id=file.uploaded_by_id,
            client=client,
            created_at=now,
            attached_at=now,
        )
        copies.append(copy)
        bound.append(copy)
    if copies:
        StoredFile.objects.bulk_create(copies)
    return bound


def file_open(file: StoredFile) -> IO[bytes]:
    """The stored bytes for reading (a file object; close it)."""
    handle: IO[bytes] = files_storage().open(object_name(file.sha256), "rb")
    return handle


def file_signed_url(*, file: StoredFile, base_url: str, expires_in: int = 3600) -> str:
    """A link that downloads `file` without credentials until `expires_in` seconds from now
    (webhooks carry it). Django's signing with a salt of its own: altered, it is refused."""
    expires = int(timezone.now().timestamp()) + int(expires_in)
    token = signing.dumps({"f": str(file.pk), "e": expires}, salt=SIGNED_URL_SALT, compress=False)
    return f"{base_url.rstrip('/')}/files/signed/{token}"


def file_from_signed_token(*, token: str) -> StoredFile:
    """The file a signed link names, or SignedUrlRefused (altered, expired, or the file gone)."""
    try:
        payload = signing.loads(token, salt=SIGNED_URL_SALT)
        file_id = uuid.UUID(str(payload["f"]))
        expires = int(payload["e"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as error:
        raise SignedUrlRefused("This download link is not valid.") from error
    if timezone.now().timestamp() > expires:
        raise SignedUrlExpired("This download link has expired.")
    row = StoredFile.objects.filter(pk=file_id).first()
    if row is None:
        raise SignedUrlRefused("This download link is not valid.")
    return row


def files_cleanup(*, now: datetime, limit: int = CLEANUP_BATCH) -> int:
    """Delete up to `limit` uploads never attached within a day, and the bytes of each hash no
    row refers to any more. Returns how many rows went."""
    cutoff = now - timedelta(hours=UNATTACHED_HOURS)
    stale = list(
        StoredFile.objects.filter(attached_at__isnull=True, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", "sha256")[:limit]
    )
    if not stale:
        return 0
    # One statement, re-checking the condition: a file attached meanwhile stays.
    deleted, _ = StoredFile.objects.filter(
        pk__in=[pk for pk, _ in stale], attached_at__isnull=True, created_at__lt=cutoff
    ).delete()
    storage = files_storage()
    for sha256 in sorted({sha for _, sha in stale}):
        with transaction.atomic():
            blob = StoredBlob.objects.select_for_update().filter(sha256=sha256).first()
            if StoredFile.objects.filter(sha256=sha256).exists():
                continue
            storage.delete(object_name(sha256))
            if blob is not None:
                blob.delete()
    return deleted


def files_cleanup_job(now: datetime) -> datetime | None:
    """The worker's job `files.cleanup`: again at once while a full batch went."""
    removed = files_cleanup(now=now)
    return now if removed >= CLEANUP_BATCH else None
