"""Who sent a request and from where, as recorded on every message for audit."""

from dataclasses import dataclass

from django.http import HttpRequest

from clientdesk.core.middleware import request_id_for


@dataclass(frozen=True, slots=True)
class RequestMeta:
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> "RequestMeta":
        return cls(
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.headers.get("User-Agent", "")[:512],
            request_id=request_id_for(request),
        )
