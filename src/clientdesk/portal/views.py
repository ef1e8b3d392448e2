"""The reference online cabinet: one page whose script talks only to the portal API."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from clientdesk.core.gate import public


@public  # the page holds no data; its script signs in to the portal API
def cabinet(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/cabinet.html", {"business_name": settings.BUSINESS_NAME})
