"""The permission every URL declares: `@requires(...)` / `@public` on page views,
`required_permissions` on API views (checked by `DeclaredPermission`, the API's default).

The gate refuses early and alike everywhere; the services still check what they do, since
they are called from pages, the API, commands and the worker."""

from collections.abc import Callable, Mapping
from functools import wraps
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from clientdesk.core.errors import PermissionDenied
from clientdesk.core.permissions import AppPermission
from clientdesk.core.ui import render_error_page

PUBLIC: Final = "public"
"""Open to anyone, signed in or not (login, health check, the API's own document)."""
AUTHENTICATED: Final = "authenticated"
"""Any signed-in user, whatever their roles (logout, the home redirect)."""

if TYPE_CHECKING:  # rest_framework.views imports this module through its settings
    from rest_framework.views import APIView

Requirement = AppPermission | tuple[AppPermission, ...] | str
CLIENT_SESSION: Final = "client-session"
"""A client's own portal session (the portal's authentication); no staff user or token."""

View = TypeVar("View", bound=Callable[..., Any])
Req = TypeVar("Req", bound=HttpRequest)
Resp = TypeVar("Resp", bound=HttpResponseBase)
P = ParamSpec("P")
PageView = Callable[Concatenate[Req, P], Resp]
"""A page view: the request, then what the URL carries."""
GatedView = Callable[Concatenate[Req, P], Resp | HttpResponse]
"""A page view behind the gate, which answers the login redirect or the 403 page itself."""


def _perms(requirement: Requirement) -> tuple[AppPermission, ...]:
    if isinstance(requirement, AppPermission):
        return (requirement,)
    if isinstance(requirement, tuple):
        return requirement
    return ()


def denial(requirement: Requirement) -> PermissionDenied:
    names = " or ".join(f"'{perm.display_name}'" for perm in _perms(requirement))
    return PermissionDenied(
        f"You need the {names} permission. Ask your CRM administrator for access."
    )


def allows(user: Any, requirement: Requirement) -> bool:
    if requirement == PUBLIC:
        return True
    if requirement == CLIENT_SESSION:
        return False  # never a staff user
    if user is None or not user.is_authenticated:
        return False
    if requirement == AUTHENTICATED:
        return True
    return any(user.has_perm(perm) for perm in _perms(requirement))


def _declare(view: View, requirement: Requirement) -> View:
    """Record what `view` requires as a function attribute (PEP 232): `functools.wraps` copies it
    to the decorators outside, and the permission matrix reads it from the URL resolver."""
    view.__dict__["required_permissions"] = requirement
    return view


def requires(
    *perms: AppPermission,
) -> Callable[[PageView[Req, P, Resp]], GatedView[Req, P, Resp]]:
    """A page for users holding any of `perms`; others see 403, the anonymous the login."""
    if not perms:
        raise ImproperlyConfigured("requires() needs at least one permission.")
    requirement: Requirement = perms if len(perms) > 1 else perms[0]
    return _gate(requirement)


def public(view: View) -> View:
    return _declare(view, PUBLIC)


def authenticated(view: PageView[Req, P, Resp]) -> GatedView[Req, P, Resp]:
    return _gate(AUTHENTICATED)(view)


def declared(requirement: Requirement) -> Callable[[View], View]:
    """Record the requirement of a view that enforces it with its own authentication (the
    portal's client session, a sign-in code)."""

    def declare(view: View) -> View:
        return _declare(view, requirement)

    return declare


def enforced_in_view(*perms: AppPermission) -> Callable[[View], View]:
    """Declare the permission of a view that checks it itself (an async event stream, which
    authenticates by session or token and re-checks while it runs)."""
    requirement: Requirement = perms if len(perms) > 1 else perms[0]

    def declare(view: View) -> View:
        return _declare(view, requirement)

    return declare


def _gate(
    requirement: Requirement,
) -> Callable[[PageView[Req, P, Resp]], GatedView[Req, P, Resp]]:
    def decorate(view: PageView[Req, P, Resp]) -> GatedView[Req, P, Resp]:
        @wraps(view)
        def gated(request: Req, /, *args: P.args, **kwargs: P.kwargs) -> Resp | HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not allows(request.user, requirement):
                return render_error_page(request, denial(requirement))
            return view(request, *args, **kwargs)

        return _declare(gated, requirement)

    return decorate


class DeclaredPermission(BasePermission):
    """The API's default permission class: an API view says, per method, what it needs in
    `required_permissions = {"GET": ..., "POST": ...}`; a view that says nothing is refused."""

    def has_permission(self, request: Request, view: "APIView") -> bool:
        declared: Mapping[str, Requirement] | None = getattr(view, "required_permissions", None)
        if declared is None:
            raise ImproperlyConfigured(f"{type(view).__name__} declares no required_permissions.")
        method = "GET" if request.method in ("HEAD", "OPTIONS") else str(request.method)
        if method not in declared:
            # No handler either: let the view answer 405 to anyone signed in.
            if hasattr(view, method.lower()):
                raise ImproperlyConfigured(f"{type(view).__name__} declares nothing for {method}.")
            return bool(request.user and request.user.is_authenticated)
        requirement = declared[method]
        if allows(request.user, requirement):
            return True
        self.message = denial(requirement).detail
        return False
