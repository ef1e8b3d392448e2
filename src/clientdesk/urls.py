"""Top-level routes."""

from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import include, path, register_converter
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from clientdesk.accounts.views import (
    admin_login,
    invitation_accept,
    login_code,
    login_view,
    profile_page,
    two_factor_page,
)
from clientdesk.core.converters import IdConverter
from clientdesk.core.gate import authenticated, public
from clientdesk.core.metrics import metrics
from clientdesk.core.problems import problem_response
from clientdesk.core.views import healthz, livez, readyz

register_converter(IdConverter, "id")  # before the includes below read their routes


@authenticated
def home(request: HttpRequest) -> HttpResponse:
    return redirect("clients:list")


# 404 for every method, caller and query: it changes nothing, so CSRF has nothing to guard (a
# POST with a token or a cookie is not "CSRF check failed"), and the routes are public anyway.
@csrf_exempt
@public
def api_not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    return problem_response(
        status_code=404, detail=f"No API endpoint at {request.path[:200]}.", type_slug="not-found"
    )


urlpatterns = [
    path("", home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("livez", livez, name="livez"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("accounts/login/", login_view, name="login"),
    path("accounts/login/code/", login_code, name="login-code"),
    path("accounts/logout/", public(auth_views.LogoutView.as_view()), name="logout"),
    path("accounts/profile/", profile_page, name="profile"),
    path("accounts/profile/two-factor/", two_factor_page, name="two-factor"),
    path("accounts/invitation/<uidb64>/<token>/", invitation_accept, name="invitation-accept"),
    path("administration/", include("clientdesk.accounts.administration.urls")),
    path("clients/", include("clientdesk.clients.urls")),
    path("broadcasts/", include("clientdesk.outreach.urls")),
    path("", include("clientdesk.messaging.urls")),
    path("", include("clientdesk.audit.urls")),
    path("", include("clientdesk.followup.urls")),
    path("integrations/", include("clientdesk.delivery.urls")),
    # Before the admin's own routes: its login form would skip the second step.
    path("admin/", include([path("login/", admin_login, name="admin-login")])),
    path("admin/", admin.site.urls),
    path("api/v1/", include("clientdesk.api_urls")),
    path("portal/", include("clientdesk.portal.urls")),
    path("files/", include("clientdesk.files.urls")),
    path("portal/api/<path:path>", api_not_found),
    path("api/schema/", public(SpectacularAPIView.as_view()), name="schema"),
    # Swagger UI's script is a file (the split view); the UI sets inline styles, allowed on
    # this one page only. Script stays 'self' everywhere.
    path(
        "api/docs/",
        public(
            csp_update({"style-src": ["'unsafe-inline'"]})(
                SpectacularSwaggerSplitView.as_view(url_name="schema")
            )
        ),
        name="api-docs",
    ),
    path("api/<path:path>", api_not_found),
]

handler400 = "clientdesk.core.views.bad_request"
handler403 = "clientdesk.core.views.permission_denied"
handler404 = "clientdesk.core.views.page_not_found"
handler500 = "clientdesk.core.views.server_error"
