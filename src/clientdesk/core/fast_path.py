"""A staff API request that carries a bearer token skips the middleware that serves signed-in
pages only.

Such a request is authenticated by its token (accounts/authentication.py) or refused with 401:
it never falls back to the session, so CSRF (the API's views are CSRF-exempt, and DRF checks
CSRF itself for session users), messages, htmx, the 2FA enrolment redirect and the sign-in
lockout have nothing to do for it (the second step's `is_verified` stays: every middleware's
`process_view` still runs, and the 2FA one asks it of a session user the request may carry).
Each costs a call and a wrapper per request: about 8 % of a send's CPU together
(docs/PERFORMANCE.md).

`ApiTokenFastPath` sits in MIDDLEWARE right before the first of them. At start-up it builds a
second chain from the middleware after it, the same instances' classes in the same order less
those in `SKIPPED`, ending in the same view handling (URL resolving, every middleware's
`process_view` and `process_exception`, so the 405 of a wrong method and domain errors as
problem+json are unchanged). Every other request (pages, the portal, the API with a session or
no credentials) goes down the full chain. Under ASGI, or if the chain is not what it expects,
the fast path is off and every request takes the full chain.
"""

from collections.abc import Callable
from types import MethodType
from typing import Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from clientdesk.core.bearer import bearer_token

# Middleware with nothing to do for a request authenticated by an API token.
SKIPPED = frozenset(
    {
        "django.middleware.csrf.CsrfViewMiddleware",
        "clientdesk.core.local_time.LocalTimeMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
        "clientdesk.accounts.middleware.TwoFactorRequiredMiddleware",
        "axes.middleware.AxesMiddleware",
    }
)
STAFF_API_PREFIX = "/api/"

Handler = Callable[[HttpRequest], HttpResponseBase]


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _lean_chain(get_response: Any) -> Handler | None:
    """The middleware after this one, less SKIPPED, around the same view handling; None when
    the chain holds something else than middleware instances ending in the sync handler."""
    from django.core.handlers.exception import convert_exception_to_response

    classes: list[type] = []
    step = get_response
    while True:
        target = getattr(step, "__wrapped__", step)
        if isinstance(target, MethodType) and target.__name__ == "_get_response":
            break
        nested = getattr(target, "get_response", None)
        if nested is None or isinstance(target, MethodType | type) or not callable(target):
            return None
        classes.append(type(target))
        step = nested
    handler: Any = convert_exception_to_response(target)
    for cls in reversed([c for c in classes if _path(c) not in SKIPPED]):
        handler = convert_exception_to_response(cls(handler))
    return handler


class ApiTokenFastPath:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.lean = _lean_chain(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if (
            self.lean is not None
            and request.path_info.startswith(STAFF_API_PREFIX)
            and bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
        ):
            return self.lean(request)
        return self.get_response(request)
