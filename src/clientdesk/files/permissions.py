"""Permissions of the files app and the roles that hold them."""

from clientdesk.accounts.roles import Role
from clientdesk.core.permissions import AppPermission


class FilesPermission(AppPermission):
    # Uploading is part of sending a message, so the roles that send hold it.
    UPLOAD_FILE = "files.upload_file", "Upload files"


ROLE_GRANTS = {
    Role.MANAGER: [FilesPermission.UPLOAD_FILE],
    Role.AGENT: [FilesPermission.UPLOAD_FILE],
}
