"""`can` in every template: `{% if can.send_private_message %}` asks the request's user."""

from typing import Any

from django.http import HttpRequest

from clientdesk.core.permissions import PermissionFlags


def permissions(request: HttpRequest) -> dict[str, Any]:
    return {"can": PermissionFlags(getattr(request, "user", None))}
