"""Pages of the Administration area: users (invite, roles, deactivate, reactivate, reset
two-factor sign-in), API tokens (create, shown once; revoke) and the roles' permissions
(read-only: roles are defined in code)."""

import uuid
from collections.abc import Callable, Mapping

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from clientdesk.accounts.administration.selectors import (
    role_grants,
    tokens_for_administration,
    users_for_administration,
)
from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.permissions import ADMINISTER
from clientdesk.accounts.requests import StaffRequest
from clientdesk.accounts.roles import ROLES
from clientdesk.accounts.services import (
    api_token_create,
    api_token_revoke,
    two_factor_disable,
    user_deactivate,
    user_invitation_send,
    user_invite,
    user_reactivate,
    user_roles_change,
)
from clientdesk.core.errors import ApplicationError, ValidationFailed
from clientdesk.core.gate import requires

NAME_LIMIT = 100  # ApiToken.name


def _base_url(request: StaffRequest) -> str:
    """Where links in e-mails start: CLIENTDESK_PUBLIC_URL when set, else this request's."""
    return str(getattr(settings, "PUBLIC_URL", "") or request.build_absolute_uri("/"))


@requires(*ADMINISTER)
@require_GET
def users_page(request: StaffRequest) -> HttpResponse:
    return _users(request)


def _users(
    request: StaffRequest,
    *,
    form: Mapping[str, object] | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "section": "users",
        "users": users_for_administration(),
        "roles": ROLES,
        "form": form or {"roles": []},
        "error": error,
        "invitation_hours": settings.CLIENTDESK_INVITATION_HOURS,
    }
    return render(request, "accounts/administration/users.html", context, status=status)


@requires(*ADMINISTER)
@require_POST
def user_invite_view(request: StaffRequest) -> HttpResponse:
    fields = ("email", "username", "first_name", "last_name")
    values = {field: request.POST.get(field, "")[:1000] for field in fields}
    roles = [str(role) for role in request.POST.getlist("roles")[:20]]
    try:
        user = user_invite(actor=request.user, roles=roles, **values)
    except ValidationFailed as failure:
        errors = failure.extra.get("errors", {})
        detail = failure.detail + "".join(
            f" {field.replace('_', ' ').capitalize()}: {' '.join(texts)}"
            for field, texts in errors.items()
        )
        form = {**values, "roles": roles}
        return _users(request, form=form, error=detail, status=failure.status)
    try:
        user_invitation_send(actor=request.user, user_id=user.pk, base_url=_base_url(request))
    except OSError as failure:
        messages.error(
            request,
            gettext(
                "%(username)s was added, but the invitation e-mail could not be sent "
                "(%(error)s). Send it again from their page."
            )
            % {"username": user.username, "error": type(failure).__name__},
        )
    else:
        messages.success(request, gettext("Invitation sent to %(email)s.") % {"email": user.email})
    return redirect("administration:user", user_id=user.pk)


@requires(*ADMINISTER)
@require_GET
def user_page(request: StaffRequest, user_id: uuid.UUID) -> HttpResponse:
    person = get_object_or_404(users_for_administration(), pk=user_id)
    context = {
        "section": "users",
        "person": person,
        "person_roles": {g.name for g in person.groups.all()},
        "roles": ROLES,
        "tokens": tokens_for_administration(user=person),
        "live_tokens": ApiToken.objects.filter(user=person, revoked_at__isnull=True).count(),
        "invited": not person.has_usable_password() and person.last_login is None,
    }
    return render(request, "accounts/administration/user.html", context)


def _act(
    request: StaffRequest, user_id: uuid.UUID, done: str, action: Callable[[], object]
) -> HttpResponse:
    get_object_or_404(User, pk=user_id)
    try:
        action()
    except ApplicationError as failure:
        messages.error(request, failure.detail)
    else:
        messages.success(request, done)
    return redirect("administration:user", user_id=user_id)


@requires(*ADMINISTER)
@require_POST
def user_roles_view(request: StaffRequest, user_id: uuid.UUID) -> HttpResponse:
    roles = request.POST.getlist("roles")[:20]
    return _act(
        request,
        user_id,
        "Roles saved.",
        lambda: user_roles_change(actor=request.user, user_id=user_id, roles=roles),
    )


@requires(*ADMINISTER)
@require_POST
def user_deactivate_view(request: StaffRequest, user_id: uuid.UUID) -> HttpResponse:
    return _act(
        request,
        user_id,
        "Deactivated: their sessions ended and their API tokens were revoked.",
        lambda: user_deactivate(actor=request.user, user_id=user_id),
    )


@requires(*ADMINISTER)
@require_POST
def user_reactivate_view(request: StaffRequest, user_id: uuid.UUID) -> HttpResponse:
    return _act(
        request,
        user_id,
        "Reactivated: they can sign in again.",
        lambda: user_reactivate(actor=request.user, user_id=user_id),
    )


@requires(*ADMINISTER)
@require_POST
def user_invitation_view(request: StaffRequest, user_id: uuid.UUID) -> HttpResponse:
    def send() -> None:
        try:
            user_invitation_send(actor=request.user, user_id=user_id, base_url=_base_url(request))
        except OSError as failure:
            raise ValidationFailed(
                f"The invitation e-mail could not be sent ({type(failure).__name__})."
            ) from failure

    return _act(request, user_id, "Invitation sent again.", send)


@requires(*ADMINISTER)
@require_POST
def user_two_factor_reset_view(request: StaffRequest, user_id: uuid.UUID) -> HttpResponse:
    person = get_object_or_404(User, pk=user_id)
    return _act(
        request,
        user_id,
        "Two-factor sign-in turned off: they set it up again at their next sign-in.",
        lambda: two_factor_disable(actor=request.user, user=person),
    )


@requires(*ADMINISTER)
@require_GET
def tokens_page(request: StaffRequest) -> HttpResponse:
    return _tokens(request)


def _tokens(
    request: StaffRequest,
    *,
    created: tuple[ApiToken, str] | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "section": "tokens",
        "tokens": tokens_for_administration(),
        "users": User.objects.filter(is_active=True).order_by("username"),
        "created": created,
        "error": error,
    }
    response = render(request, "accounts/administration/tokens.html", context, status=status)
    if created is not None:
        response["Cache-Control"] = "no-store"
    return response


@requires(*ADMINISTER)
@never_cache
@require_POST
def token_create_view(request: StaffRequest) -> HttpResponse:
    """The token is in this response only: never stored, never shown again."""
    name = request.POST.get("name", "").strip()
    try:
        user_id = uuid.UUID(request.POST.get("user", "")[:100])
    except ValueError:
        return _tokens(request, error="Choose the user the token acts as.", status=422)
    owner = User.objects.filter(pk=user_id, is_active=True).first()
    if owner is None:
        return _tokens(request, error="Choose an active user for the token.", status=422)
    if len(name) > NAME_LIMIT:
        return _tokens(request, error=f"The name is at most {NAME_LIMIT} characters.", status=422)
    created = api_token_create(user=owner, name=name, actor=request.user)
    return _tokens(request, created=created)


@requires(*ADMINISTER)
@require_POST
def token_revoke_view(request: StaffRequest, token_id: uuid.UUID) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id)
    if token.revoked_at is not None:
        messages.info(request, gettext("That token was already revoked."))
    else:
        api_token_revoke(token=token, actor=request.user)
        messages.success(
            request,
            gettext("Token %(prefix)s… revoked: it no longer works.") % {"prefix": token.prefix},
        )
    return redirect("administration:tokens")


@requires(*ADMINISTER)
@require_GET
def roles_page(request: StaffRequest) -> HttpResponse:
    context = {
        "section": "roles",
        "roles": ROLES,
        "rows": role_grants(),
        "superusers": User.objects.filter(is_superuser=True, is_active=True).order_by("username"),
    }
    return render(request, "accounts/administration/roles.html", context)
