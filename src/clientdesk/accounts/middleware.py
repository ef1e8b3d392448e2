"""Two-factor sign-in required (`CLIENTDESK_REQUIRE_2FA_FOR`): a signed-in user of those roles
whose session did not pass the second step reaches only the enrolment page, sign-in and
sign-out, and public URLs. Without an authenticator they are sent to enrol; with one (a session
from before they enrolled) they are signed out, to sign in again with the second step. Under the
APIs the answer is 403 problem+json; API tokens are not sessions and are not affected."""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from clientdesk.accounts.two_factor import totp_device, two_factor_required
from clientdesk.core.gate import PUBLIC
from clientdesk.core.problems import problem_response

# What a user who must enrol may still open.
ALLOWED = frozenset({"two-factor", "login", "login-code", "logout"})


class TwoFactorRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        match = request.resolver_match
        if match is not None and match.url_name in ALLOWED:
            return None
        if getattr(view, "required_permissions", None) == PUBLIC:
            return None
        if user.is_verified() or not two_factor_required(user):
            return None
        api = request.path.startswith(tuple(settings.CLIENTDESK_API_PATH_PREFIXES))
        if totp_device(user) is not None:
            # Signed in before enrolling: sign in again, this time with the code.
            logout(request)
            if api:
                return problem_response(
                    status_code=401,
                    detail="Sign in again with your two-factor code.",
                    type_slug="not-authenticated",
                )
            return _go(request, redirect_to_login(request.get_full_path()))
        if api:
            return problem_response(
                status_code=403,
                detail="Turn on two-factor sign-in first (your profile, Two-factor sign-in).",
                type_slug="two-factor-required",
            )
        return _go(request, redirect(f"{reverse('two-factor')}?required=1"))


def _go(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(response["Location"])
    return response
