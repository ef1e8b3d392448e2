"""The staff user's own pages: the profile (time zone, two-factor sign-in), the two-step
sign-in, and the invitation's set-password page."""

import time
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, login, user_login_failed
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login

from clientdesk.accounts.invitations import invitation_tokens
from clientdesk.accounts.models import RecoveryCode, User
from clientdesk.accounts.requests import StaffRequest
from clientdesk.accounts.services import (
    recovery_codes_renew,
    two_factor_disable,
    two_factor_enable,
    two_factor_verify,
    user_password_set,
    user_sessions_end,
    user_timezone_set,
)
from clientdesk.accounts.two_factor import (
    otpauth_uri,
    qr_svg,
    recovery_code_shown,
    secret_base32,
    totp_device,
    totp_secret_new,
    two_factor_required,
)
from clientdesk.core.errors import ApplicationError, PermissionDenied
from clientdesk.core.gate import authenticated, public
from clientdesk.core.local_time import browser_zone
from clientdesk.core.ui import render_error_page
from clientdesk.core.zones import zone_groups

PENDING = "clientdesk_2fa_pending"
ENROL_KEY = "clientdesk_2fa_enrol_key"
FRESH_CODES = "clientdesk_2fa_fresh_codes"


@authenticated
@require_http_methods(["GET", "POST"])
def profile_page(request: StaffRequest) -> HttpResponse:
    problem: ApplicationError | None = None
    chosen = request.user.timezone
    if request.method == "POST":
        chosen = request.POST.get("timezone", "")
        try:
            user_timezone_set(user=request.user, zone=chosen)
        except ApplicationError as failure:
            problem = failure
        else:
            messages.success(request, gettext("Profile saved."))
            return redirect("profile")
    browser = browser_zone(request)
    context = {
        "chosen": chosen,
        "zones": zone_groups(),
        "browser_zone": browser.key if browser else None,
        "error": problem,
        "two_factor": totp_device(request.user),
        "recovery_left": RecoveryCode.objects.filter(
            user=request.user, used_at__isnull=True
        ).count(),
    }
    return render(
        request, "accounts/profile.html", context, status=problem.status if problem else 200
    )


# --- Sign-in in two steps --------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Django's login; for a user with an authenticator the password only opens the second
    step (`login_code`): nothing signs them in, so axes' count of failures is not reset by the
    password alone and bounds the password and the code together."""

    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        user = form.get_user()
        if totp_device(user) is None:
            return super().form_valid(form)
        self.request.session[PENDING] = {
            "user": str(user.pk),
            "backend": user.backend,
            "at": time.time(),
            "next": self.get_success_url(),
        }
        return redirect("login-code")


def _pending_user(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    pending = request.session.get(PENDING)
    if not isinstance(pending, dict):
        return None
    if time.time() - float(pending.get("at", 0)) > settings.CLIENTDESK_2FA_PENDING_SECONDS:
        del request.session[PENDING]
        return None
    user = User.objects.filter(pk=str(pending.get("user", "")), is_active=True).first()
    return (user, pending) if user is not None else None


@public
@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    """The second step: a code from the authenticator app, or a recovery code."""
    found = _pending_user(request)
    if found is None:
        return render(request, "registration/login_code.html", {"expired": True})
    user, pending = found
    error = ""
    if request.method == "POST":
        credentials = {"username": user.username}
        if AxesProxyHandler.is_locked(request, credentials):
            setattr(request, "axes_locked_out", True)  # noqa: B010 - axes reads these
            setattr(request, "axes_credentials", credentials)  # noqa: B010
            return HttpResponse(status=403)  # AxesMiddleware answers with the lockout page
        verified = two_factor_verify(user=user, code=request.POST.get("code", "")[:64])
        if verified is None:
            # Counted by axes like a wrong password: the limit bounds both steps together.
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            if getattr(request, "axes_locked_out", False):
                return HttpResponse(status=403)
            error = (
                "That code is not valid. Enter the current code from your app, or a recovery code."
            )
        else:
            device, by_recovery = verified
            del request.session[PENDING]
            login(request, user, backend=pending["backend"])
            otp_login(request, device)  # the session passed the second step
            if by_recovery:
                left = RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()
                messages.warning(
                    request,
                    gettext(
                        "You signed in with a recovery code; %(left)s left. "
                        "Make new ones on your profile page."
                    )
                    % {"left": left},
                )
            target = str(pending.get("next") or "")
            if not url_has_allowed_host_and_scheme(
                target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
            ):
                target = reverse(settings.LOGIN_REDIRECT_URL)
            return redirect(target)
    return render(
        request, "registration/login_code.html", {"error": error}, status=422 if error else 200
    )


# --- Two-factor sign-in on the profile -------------------------------------------------------


@authenticated
@never_cache
@require_http_methods(["GET", "POST"])
def two_factor_page(request: StaffRequest) -> HttpResponse:
    """Enrol (scan the QR code, confirm with a code), see the recovery codes once, make new
    ones, or turn it off with a current code."""
    user = request.user
    device = totp_device(user)
    error = ""
    action = request.POST.get("action", "") if request.method == "POST" else ""
    if action == "enable" and device is None:
        key = request.session.get(ENROL_KEY)
        if not isinstance(key, str):
            error = "The enrolment expired: scan the new QR code."
        else:
            try:
                device, codes = two_factor_enable(
                    user=user, key=key, code=request.POST.get("code", "")[:64]
                )
            except ApplicationError as failure:
                error = failure.detail
            else:
                del request.session[ENROL_KEY]
                # Signed in with the second step from now on; other sessions end.
                request.session.cycle_key()
                otp_login(request, device)
                user_sessions_end(actor=user, user=user, keep=request.session.session_key)
                request.session[FRESH_CODES] = codes
                messages.success(request, gettext("Two-factor sign-in is on."))
                return redirect("two-factor")
    elif action in {"disable", "renew"} and device is not None:
        verified = two_factor_verify(user=user, code=request.POST.get("code", "")[:64])
        if verified is None:
            error = "That code is not valid: enter the current code from your app."
        elif action == "disable":
            two_factor_disable(actor=user, user=user)
            messages.success(request, gettext("Two-factor sign-in is off."))
            return redirect("profile")
        else:
            request.session[FRESH_CODES] = recovery_codes_renew(user=user)
            messages.success(
                request, gettext("New recovery codes made; the old ones no longer work.")
            )
            return redirect("two-factor")
    elif action:
        error = "That cannot be done now: reload the page."
    context: dict[str, Any] = {
        "device": device,
        "error": error,
        "required": two_factor_required(user),
        "fresh_codes": [recovery_code_shown(c) for c in request.session.pop(FRESH_CODES, [])],
        "recovery_left": RecoveryCode.objects.filter(user=user, used_at__isnull=True).count(),
    }
    if device is None:
        key = request.session.get(ENROL_KEY)
        if not isinstance(key, str):
            key = request.session[ENROL_KEY] = totp_secret_new()
        context["secret"] = secret_base32(key)
        context["qr"] = qr_svg(otpauth_uri(user=user, key=key))
    response = render(request, "accounts/two_factor.html", context, status=422 if error else 200)
    return response


# --- The invitation: set a password ----------------------------------------------------------


class _InvitationPasswordForm(SetPasswordForm):
    def save(self, commit: bool = True) -> Any:
        return user_password_set(user=self.user, password=self.cleaned_data["new_password1"])


class InvitationAcceptView(auth_views.PasswordResetConfirmView):
    """The link in an invitation e-mail: Django's password-reset confirmation under the
    invitation's token (moved from the URL into the session first, so it never leaks in a
    Referer). Setting the password makes the link useless; the user then signs in."""

    token_generator = invitation_tokens
    form_class = _InvitationPasswordForm
    template_name = "accounts/invitation_accept.html"
    reset_url_token = "set-password"  # noqa: S105 - a URL segment, not a secret
    post_reset_login = False

    def get_user(self, uidb64: str) -> User | None:
        user = super().get_user(uidb64)
        return user if user is not None and user.is_active else None

    def form_valid(self, form: Any) -> HttpResponse:
        form.save()
        del self.request.session[auth_views.INTERNAL_RESET_SESSION_TOKEN]
        messages.success(self.request, gettext("Your password is set. Log in with it now."))
        return redirect("login")


@public
def admin_login(request: HttpRequest) -> HttpResponse:
    """The Django admin's login (routed before the admin's own, whose form would sign in with
    the password alone, skipping the second step): everyone signs in at /accounts/login/ and
    comes back; a signed-in user who is not staff is refused, not sent round in a loop."""
    if request.user.is_authenticated:
        return render_error_page(
            request, PermissionDenied("The Django admin is for staff accounts only.")
        )
    return redirect_to_login(request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index"))


invitation_accept = public(InvitationAcceptView.as_view())
login_view = public(LoginView.as_view())
