"""What makes the cabinet an installable web app that can receive Web Push: its service worker
(served under /portal/, so its scope is the cabinet) and its web app manifest."""

import json

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_safe

from clientdesk.core.gate import public

THEME_COLOR = "#2f5bd3"


@public
@require_safe
def service_worker(request: HttpRequest) -> HttpResponse:
    """Shows each push on browsers without Declarative Web Push, confirms it (a receipt to the
    portal API), and opens the cabinet at the message on click. Revalidated on every update
    check, so a new release reaches devices at once."""
    response = render(
        request,
        "portal/sw.js",
        {
            "icon": static("portal/icons/icon-192.png"),
            "cabinet": reverse("portal:cabinet"),
            "receipts": reverse("portal:api-push-receipts"),
            "business_name": settings.BUSINESS_NAME,
        },
        content_type="text/javascript; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    response["Service-Worker-Allowed"] = reverse("portal:cabinet")
    return response


@public
@require_safe
def manifest(request: HttpRequest) -> HttpResponse:
    """The web app manifest: `display: standalone` lets a phone add the cabinet to its home
    screen, which is the only way iOS and iPadOS deliver Web Push to a site."""
    cabinet = reverse("portal:cabinet")
    body = {
        "name": f"{settings.BUSINESS_NAME} · Online cabinet",
        "short_name": settings.BUSINESS_NAME[:30],
        "id": cabinet,
        "start_url": cabinet,
        "scope": cabinet,
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": THEME_COLOR,
        "icons": [
            {
                "src": static("portal/icons/icon-192.png"),
                "sizes": "192x192",
                "type": "image/png",
                "purpose": "any",
            },
            {
                "src": static("portal/icons/icon-512.png"),
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "any",
            },
            {
                "src": static("portal/icons/icon-512.png"),
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "maskable",
            },
        ],
    }
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False, indent=2),
        content_type="application/manifest+json; charset=utf-8",
    )
    response["Cache-Control"] = "no-cache"
    return response
