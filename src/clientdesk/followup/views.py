"""The Messages page (conversations across clients, by follow-up view) and the follow-up
settings page."""

import uuid
from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from clientdesk.accounts.models import User
from clientdesk.accounts.requests import StaffRequest
from clientdesk.core.bounded import Refused, parse_day, refused
from clientdesk.core.errors import ApplicationError
from clientdesk.core.gate import requires
from clientdesk.core.time import iso_utc
from clientdesk.core.ui import render_error_page
from clientdesk.core.zones import zone_groups, zone_or_none
from clientdesk.followup.clock import WEEKDAYS
from clientdesk.followup.permissions import FollowupPermission
from clientdesk.followup.policy import (
    holiday_countries,
    policy_fields,
    policy_preview,
    policy_problem,
)
from clientdesk.followup.selectors import (
    VIEW_LABELS,
    ConversationFilters,
    CursorPage,
    MessageFilters,
    conversations_list,
    messages_list,
    policy_get,
)
from clientdesk.followup.services import check_can_manage_policy, policy_update
from clientdesk.messaging.permissions import MessagingPermission
from clientdesk.messaging.selectors import (
    NO_FILES,
    check_can_view,
    deliveries_by_message,
    files_by_message,
)

PAGE_SIZE = 25


def _date(request: StaffRequest, name: str, *, end: bool = False) -> datetime | None:
    """The YYYY-MM-DD of a date input as the start (or, with `end`, the end) of that day, None
    when empty; anything else, or a day outside the years 2 to 9998, is a 422 naming it."""
    value = request.GET.get(name, "")
    if not value:
        return None
    try:
        day = parse_day(value)
    except Refused as error:
        raise refused(name, error, value) from error
    moment = datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())
    return moment + timedelta(days=1) if end else moment


def _export_url(request: StaffRequest) -> str:
    """The export (CSV) of the messages the filters select: the date range (the "To" day
    included), the sender and the direction. The view and the client search pick
    conversations, not messages, so they do not narrow it."""
    query = {"format": "csv"}
    # The days are the reader's, in their time zone; the export reads instants (a bare date is
    # a UTC day there), so it gets the instants those days begin and end.
    since, until = _date(request, "since"), _date(request, "until", end=True)
    if since:
        query["since"] = iso_utc(since)
    if until:
        query["until"] = iso_utc(until)
    sender_id = _uuid(request.GET.get("sender", ""))
    if sender_id:
        username = User.objects.filter(pk=sender_id).values_list("username", flat=True).first()
        if username:
            query["sender"] = username
    if request.GET.get("direction") in ("in", "out"):
        query["direction"] = request.GET["direction"]
    return f"{reverse('api-messages-export')}?{urlencode(query)}"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@requires(MessagingPermission.VIEW_MESSAGE)
@require_GET
def messages_page(request: StaffRequest) -> HttpResponse:
    view = request.GET.get("view", "all")
    if view not in VIEW_LABELS:
        view = "all"
    direction = request.GET.get("direction", "")
    filters = ConversationFilters(
        view=view,
        search=request.GET.get("q", "")[:200],
        direction=direction if direction in ("in", "out") else None,
        sender_id=_uuid(request.GET.get("sender", "")),
        since=_date(request, "since"),
        until=_date(request, "until", end=True),
    )
    try:
        check_can_view(request.user)
        if view == "documents":
            page = _documents_pending(request, filters)
        else:
            page = conversations_list(
                user=request.user,
                filters=filters,
                cursor=request.GET.get("cursor") or None,
                limit=PAGE_SIZE,
            )
    except ApplicationError as error:
        return render_error_page(request, error)
    pending = page.items if view == "documents" else []
    conversations = [] if view == "documents" else page.items
    deliveries = deliveries_by_message(c.last_message_id for c in conversations)
    files = files_by_message(m.id for m in pending)
    params = request.GET.copy()
    params.pop("cursor", None)
    context = {
        "view": view,
        "views": VIEW_LABELS.items(),
        "rows": [(c, deliveries.get(c.last_message_id, [])) for c in conversations],
        "pending": [(m, files.get(m.id, NO_FILES)) for m in pending],
        "next_cursor": page.next_cursor,
        "first_page": not request.GET.get("cursor"),
        "query_without_cursor": params.urlencode(),
        "filters": {
            "q": filters.search,
            "direction": direction,
            "sender": request.GET.get("sender", ""),
            "since": request.GET.get("since", ""),
            "until": request.GET.get("until", ""),
        },
        "senders": User.objects.filter(is_active=True, sent_messages__isnull=False)
        .distinct()
        .order_by("first_name", "last_name")[:200],
        "now": timezone.now(),
        # Everyone reading due times here should know when none are being set.
        "clock_problem": policy_problem(policy_get()),
        "export_url": _export_url(request)
        if request.user.has_perm(MessagingPermission.EXPORT_MESSAGES)
        else None,
    }
    template = "followup/messages.html"
    if request.htmx and request.htmx.target == "conversations":
        template += "#conversations"
    return render(request, template, context)


def _documents_pending(request: StaffRequest, filters: ConversationFilters) -> CursorPage:
    """The "Documents pending" view: our messages with a document request still open, newest
    first, each with its reply clock. The client search does not narrow it."""
    return messages_list(
        user=request.user,
        filters=MessageFilters(
            documents="open",
            sender_id=filters.sender_id,
            since=filters.since,
            until=filters.until,
        ),
        cursor=request.GET.get("cursor") or None,
        limit=PAGE_SIZE,
    )


def _policy_form(request: StaffRequest) -> dict[str, object]:
    post = request.POST
    hours: dict[str, list[str] | None] = {}
    for day in WEEKDAYS:
        if post.get(f"{day}_open_day"):
            hours[day] = [post.get(f"{day}_opens", ""), post.get(f"{day}_closes", "")]
        else:
            hours[day] = None

    def number(name: str) -> object:
        try:
            return float(post.get(name, ""))
        except ValueError:
            return post.get(name, "")

    return {
        "reply_window_hours": number("reply_window_hours"),
        "response_window_hours": number("response_window_hours"),
        "timezone": post.get("timezone", ""),
        "business_hours": hours,
        "holidays": post.get("holidays", "") or None,
    }


def _day_hours(value: object) -> tuple[str, str] | None:
    """A day's [opening, closing] for the form's time inputs; anything else (a stored policy
    written around the validation) shows as a closed day."""
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, str) for v in value)
    ):
        return value[0], value[1]
    return None


@requires(FollowupPermission.MANAGE_FOLLOWUP_POLICY)
@require_http_methods(["GET", "POST"])
def settings_page(request: StaffRequest) -> HttpResponse:
    try:
        check_can_manage_policy(request.user)
    except ApplicationError as error:
        return render_error_page(request, error)
    policy = policy_get()
    data: dict[str, object] = policy_fields(policy)
    problem: ApplicationError | None = None
    if request.method == "POST":
        data = _policy_form(request)
        try:
            policy = policy_update(user=request.user, data=data)
        except ApplicationError as failure:
            problem = failure
        else:
            messages.success(request, gettext("Follow-up policy saved."))
            return redirect("followup:settings")
    hours = data["business_hours"] if isinstance(data["business_hours"], dict) else {}
    context = {
        "form": data,
        "days": [
            (day, label, _day_hours(hours.get(day)))
            for day, label in zip(
                WEEKDAYS,
                ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
                strict=True,
            )
        ],
        "countries": holiday_countries(),
        "zones": zone_groups(),
        "zone_known": zone_or_none(data["timezone"]) is not None,
        "error": problem,
        "preview": policy_preview(policy, now=timezone.now()),
    }
    status = problem.status if problem else 200
    return render(request, "followup/settings.html", context, status=status)
