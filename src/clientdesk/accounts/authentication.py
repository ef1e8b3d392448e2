"""`Authorization: Bearer <token>` for the API."""

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from clientdesk.accounts.selectors import user_for_api_token
from clientdesk.core.bearer import bearer_token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        token = bearer_token(header)
        if token is None:
            return None  # another scheme, or none: another authentication may take it
        if not token:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use 'Bearer <token>'."
            )
        user = user_for_api_token(token=token)
        if user is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API token.")
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
