"""What the files app refuses, each with its own status and problem type."""

from clientdesk.core.errors import ApplicationError, ValidationFailed


class FileRefused(ApplicationError):
    """An upload that is not stored: its content, name, size or the client's limits."""

    status = 422
    title = "File refused"
    type_slug = "file-refused"


class FileEmpty(FileRefused):
    type_slug = "file-empty"


class FileTypeRefused(FileRefused):
    """The content is not an accepted type, is two types at once, or contradicts the name."""

    type_slug = "file-type-refused"


class FileInfected(FileRefused):
    type_slug = "file-infected"


class FileTooLarge(FileRefused):
    status = 413
    title = "Content too large"
    type_slug = "file-too-large"


class FileQuotaExceeded(FileRefused):
    type_slug = "file-quota-exceeded"


class FileRateLimited(FileRefused):
    status = 429
    title = "Too many requests"
    type_slug = "file-rate-limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class ScannerUnavailable(FileRefused):
    """The virus scanner did not answer: the upload is refused (fail closed), to be tried again."""

    status = 503
    title = "Service unavailable"
    type_slug = "file-scanner-unavailable"
    retry_after = 30


class UnknownAttachments(ValidationFailed):
    type_slug = "unknown-attachments"


class SignedUrlRefused(ApplicationError):
    """A signed download link that was altered or names no file (404), or whose hour has
    passed (410)."""

    status = 404
    title = "Not found"
    type_slug = "signed-url-refused"


class SignedUrlExpired(SignedUrlRefused):
    status = 410
    title = "Gone"
    type_slug = "signed-url-expired"
