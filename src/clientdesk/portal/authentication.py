"""`Authorization: Bearer cdp_...` for the portal API: a client's session, never a staff user."""

from typing import Any

from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from clientdesk.clients.models import Client
from clientdesk.core.bearer import bearer_token
from clientdesk.portal.models import PortalSession
from clientdesk.portal.services import portal_session_authenticate


class PortalClient:
    """`request.user` on the portal API: the client behind a live session."""

    is_authenticated = True
    is_active = True

    def __init__(self, session: PortalSession) -> None:
        self.session = session
        self.client: Client = session.client


class PortalTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        token = bearer_token(header)
        session = portal_session_authenticate(token=token) if token else None
        if session is None:
            raise exceptions.AuthenticationFailed(
                "Unknown or expired portal session token: ask your portal for a new session."
            )
        return PortalClient(session), session

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="portal"'


class IsPortalClient(permissions.BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, PortalClient)
