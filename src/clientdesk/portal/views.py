"""The client's pages: the reference online cabinet (one page whose script talks only to the
portal API) and the one-click unsubscribe link of outreach e-mail (RFC 8058)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from clientdesk.clients.consent import client_consent_change, unsubscribe_token_client
from clientdesk.core.gate import public


@public  # the page holds no data; its script signs in to the portal API
def cabinet(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/cabinet.html", {"business_name": settings.BUSINESS_NAME})


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
    if client is None:
        return _unsubscribe_page(
            request,
            state="refused",
            title=gettext("Link not valid"),
            detail=gettext(
                "This unsubscribe link is not valid: it may have been cut or changed. Use the "
                "link in the e-mail exactly as it is, or change your choice under Notification "
                "settings in your online cabinet."
            ),
            status=404,
        )
    with translation.override(client.language):
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
                language=client.language,
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
                request, state="done", title=gettext("Unsubscribed"), language=client.language
            )
        return _unsubscribe_page(
            request, state="ask", title=gettext("Unsubscribe"), language=client.language
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
