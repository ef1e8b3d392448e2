"""Domain errors raised by services and turned into one error shape by the API and the UI."""

from typing import Any


class ApplicationError(Exception):
    """An error a user can act on. `detail` is shown as-is, in the API and in the toast."""

    status = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class ValidationFailed(ApplicationError):
    status = 422
    title = "Validation failed"
    type_slug = "validation-failed"


class NotFound(ApplicationError):
    """Raised alike for "does not exist" and "you may not see it", so nothing leaks."""

    status = 404
    title = "Not found"
    type_slug = "not-found"


class PermissionDenied(ApplicationError):
    status = 403
    title = "Permission denied"
    type_slug = "permission-denied"


class Conflict(ApplicationError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"
