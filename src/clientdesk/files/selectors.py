"""Reads of the files app: the file a staff user or a client may download."""

import uuid

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.clients.permissions import ClientsPermission
from clientdesk.core.errors import NotFound
from clientdesk.files.models import StoredFile


def _get(file_id: uuid.UUID | str) -> StoredFile | None:
    try:
        key = file_id if isinstance(file_id, uuid.UUID) else uuid.UUID(str(file_id))
    except ValueError:
        return None
    return StoredFile.objects.filter(pk=key).first()


def file_for_staff(*, user: User, file_id: uuid.UUID | str) -> StoredFile:
    """The uploader's own file while it belongs to no client; once it does, any staff user who
    may view that client. Otherwise NotFound, the same as for an unknown id."""
    row = _get(file_id)
    if row is not None and user.is_active:
        if row.client_id is None and row.uploaded_by_id == user.pk:
            return row
        if row.client_id is not None and user.has_perm(ClientsPermission.VIEW_CLIENT):
            return row
    raise NotFound("No such file.")


def file_for_client(*, client: Client, file_id: uuid.UUID | str) -> StoredFile:
    """A file of `client`'s own (its uploads, and files on messages to it), else NotFound."""
    row = _get(file_id)
    if row is None or row.client_id != client.pk:
        raise NotFound("No such file.")
    return row
