"""The client's pages: the reference online cabinet (one page whose script talks only to the
portal API) and the one-click unsubscribe link of outreach e-mail (RFC 8058)."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.utils import translation
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django.views.i18n import JavaScriptCatalog

from clientdesk.clients.consent import client_consent_change, unsubscribe_token_client
from clientdesk.core.gate import public
from clientdesk.core.languages import client_language


@public  # the page holds no data; its script signs in to the portal API
def cabinet(request: HttpRequest) -> HttpResponse:
    """The cabinet in the language of `?lang=` (the script asks for the signed-in client's own
    language, from `GET /portal/api/v1/locale`), else in the browser's: before sign-in nobody is
    known. Either way one of settings.LANGUAGES, English when nothing fits."""
    wanted = request.GET.get("lang") or translation.get_language_from_request(request)
    with client_language(wanted) as language:
        return render(
            request,
            "portal/cabinet.html",
            {"business_name": settings.BUSINESS_NAME, "language": language},
        )


# The catalog changes only with a release; a browser may keep it a few minutes.
CATALOG_MAX_AGE = 300


@public  # the translations of the cabinet's script: the same for everyone
@require_http_methods(["GET", "HEAD"])
def cabinet_catalog(request: HttpRequest, language: str) -> HttpResponseBase:
    """Django's JavaScript catalog (`gettext`, `ngettext`, `interpolate`) of cabinet.js's
    strings in one of settings.LANGUAGES; any other code is 404."""
    if language not in {code for code, _ in settings.LANGUAGES}:
        raise Http404("No such language.")
    with translation.override(language):
        response = JavaScriptCatalog.as_view(packages=["clientdesk.portal"])(request)
    patch_cache_control(response, public=True, max_age=CATALOG_MAX_AGE)
    return response


# A token is 32 hex digits, a dot and 43 characters of signature; anything much longer is
# refused before any work.
UNSUBSCRIBE_TOKEN_LENGTH = 120


@csrf_exempt  # RFC 8058: mail systems POST without cookies or tokens; the signed link is the key
@public
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """The one-click unsubscribe link of outreach e-mail. GET asks (a link checker's fetch
    changes nothing); POST, from the mail system or the page's button, turns outreach off:
    idempotent, 200 every time."""
    client = unsubscribe_token_client(token) if len(token) <= UNSUBSCRIBE_TOKEN_LENGTH else None
    if client is None:  # nobody known: the browser's language
        with client_language(translation.get_language_from_request(request)) as language:
            return _unsubscribe_page(
                request,
                state="refused",
                title=gettext("Link not valid"),
                detail=gettext(
                    "This unsubscribe link is not valid: it may have been cut or changed. Use "
                    "the link in the e-mail exactly as it is, or change your choice under "
                    "Notification settings in your online cabinet."
                ),
                status=404,
                language=language,
            )
    with client_language(client.language) as language:
        if not client.is_active:
            return _unsubscribe_page(
                request,
                state="refused",
                title=gettext("Account closed"),
                detail=gettext(
                    "This account is closed: it receives no news or offers, and this link "
                    "no longer works."
                ),
                status=410,
                language=language,
            )
        if request.method == "POST":
            client_consent_change(
                client_id=client.id,
                opt_out=True,
                actor=None,
                by_client=True,
                via="unsubscribe_link",
            )
            return _unsubscribe_page(
                request, state="done", title=gettext("Unsubscribed"), language=language
            )
        return _unsubscribe_page(
            request, state="ask", title=gettext("Unsubscribe"), language=language
        )


def _unsubscribe_page(
    request: HttpRequest,
    *,
    state: str,
    title: str,
    detail: str = "",
    status: int = 200,
    language: str = "en",
) -> HttpResponse:
    response = render(
        request,
        "portal/unsubscribe.html",
        {
            "state": state,
            "title": title,
            "detail": detail,
            "language": language,
            "business_name": settings.BUSINESS_NAME,
        },
        status=status,
    )
    # The token is in the URL: never cached, never sent on as a referrer.
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "no-referrer"
    return response
