"""Request types for annotations: what a staff view receives once the URL gate admitted a `User`."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails
from rest_framework.request import Request

from clientdesk.accounts.models import User


class StaffRequest(HttpRequest):
    """A staff page's request: the gate (`core.gate.requires`) admitted a signed-in `User`,
    never AnonymousUser, and django-htmx's middleware added `htmx`. Never instantiated."""

    user: User
    htmx: HtmxDetails


class StaffApiRequest(Request):
    """An API view's request once the gate admitted a staff token or session: `user` is a
    `User`. Never instantiated."""

    user: User
