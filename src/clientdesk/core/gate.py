"""The permission every URL declares: `@requires(...)` / `@public` on page views,
`required_permissions` on API views (checked by `DeclaredPermission`, the API's default).

The gate refuses early and alike everywhere; the services still check what they do, since
they are called from pages, the API, commands and the worker."""

from collections.abc import Callable, Mapping
from functools import wraps
from typing import TYPE_CHECKING, Any, Final, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
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


def requires(*perms: AppPermission) -> Callable[[View], View]:
    """A page for users holding any of `perms`; others see 403, the anonymous the login."""
    if not perms:
        raise ImproperlyConfigured("requires() needs at least one permission.")
    requirement: Requirement = perms if len(perms) > 1 else perms[0]
    return _gate(requirement)


def public(view: View) -> View:
    view.required_permissions = PUBLIC  # type: ignore[attr-defined]
    return view


def authenticated(view: View) -> View:
    return _gate(AUTHENTICATED)(view)


def declared(requirement: Requirement) -> Callable[[View], View]:
    """Record the requirement of a view that enforces it with its own authentication (the
    portal's client session, a sign-in code)."""

    def declare(view: View) -> View:
        view.required_permissions = requirement  # type: ignore[attr-defined]
        return view

    return declare


def enforced_in_view(*perms: AppPermission) -> Callable[[View], View]:
    """Declare the permission of a view that checks it itself (an async event stream, which
    authenticates by session or token and re-checks while it runs)."""
    requirement: Requirement = perms if len(perms) > 1 else perms[0]

    def declare(view: View) -> View:
        view.required_permissions = requirement  # type: ignore[attr-defined]
        return view

    return declare


def _gate(requirement: Requirement) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @wraps(view)
        def gated(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not allows(request.user, requirement):
                return render_error_page(request, denial(requirement))
            return view(request, *args, **kwargs)

        gated.required_permissions = requirement  # type: ignore[attr-defined]
        return gated  # type: ignore[return-value]

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
