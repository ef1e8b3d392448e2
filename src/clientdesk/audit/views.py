"""The Activity log section of the client details drawer, and the Audit page."""

import uuid
from datetime import date
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from clientdesk.accounts.requests import StaffRequest
from clientdesk.audit import signing
from clientdesk.audit.permissions import AuditPermission
from clientdesk.audit.selectors import (
    CHAIN_LIMITS,
    RecordFilters,
    audit_actions,
    audit_record_search,
    audit_verify,
    audit_waiting_count,
    check_can_view_activity,
    check_can_view_ledger,
    client_timeline,
    latest_checkpoint,
    timeline_cards,
)
from clientdesk.audit.sentences import action_label, record_rows
from clientdesk.clients.selectors import client_get
from clientdesk.core.bounded import Refused, parse_day, refused
from clientdesk.core.errors import ApplicationError, NotFound
from clientdesk.core.gate import requires
from clientdesk.core.pagination import paginate, parse_page
from clientdesk.core.ui import render_error_page

ACTIVITY_PAGE_SIZE = 20


@requires(AuditPermission.VIEW_ACTIVITY)
@require_GET
def activity_log(request: StaffRequest, client_id: uuid.UUID) -> HttpResponse:
    try:
        client = client_get(client_id=client_id)
        check_can_view_activity(request.user)
    except ApplicationError as error:
        return render_error_page(request, error)
    page = paginate(
        client_timeline(client=client),
        page=parse_page(request.GET.get("page")),
        size=ACTIVITY_PAGE_SIZE,
    )
    cards = timeline_cards(client=client, events=list(page.items))
    template = "audit/activity_log.html"
    if request.htmx:
        template += "#activity-items"
    return render(request, template, {"client": client, "page": page, "cards": cards})


AUDIT_PAGE_SIZE = 50


def _filters(query: QueryDict) -> RecordFilters:
    def day(name: str) -> date | None:
        value = query.get(name, "")
        if not value:
            return None
        try:
            return parse_day(value)
        except Refused as error:
            raise refused(name, error, value) from error

    return RecordFilters(
        action=query.get("action", "")[:60],
        actor=query.get("actor", "")[:100].replace("\x00", ""),
        object=query.get("object", "")[:100].replace("\x00", ""),
        since=day("since"),
        until=day("until"),
    )


def _ledger_view_allowed(request: StaffRequest) -> HttpResponse | None:
    try:
        check_can_view_ledger(request.user)
    except ApplicationError as error:
        return render_error_page(request, error)
    return None


def _page_context(request: StaffRequest, query: QueryDict) -> dict[str, Any]:
    filters = _filters(query)
    page = paginate(
        audit_record_search(filters),
        page=parse_page(query.get("page")),
        size=AUDIT_PAGE_SIZE,
    )
    params = query.copy()
    params.pop("page", None)
    return {
        "filters": filters,
        "actions": [(action, action_label(action)) for action in audit_actions()],
        "page": page,
        "rows": record_rows(list(page.items)),
        "query": params.urlencode(),
        "checkpoint": latest_checkpoint(),
        "waiting": audit_waiting_count(),
        "vkey": signing.current_verifier().vkey,
    }


@requires(AuditPermission.VIEW_AUDIT_RECORD)
@require_GET
def audit_page(request: StaffRequest) -> HttpResponse:
    if denied := _ledger_view_allowed(request):
        return denied
    context = _page_context(request, request.GET)
    template = "audit/audit_page.html"
    if request.htmx:
        template += "#audit-records"
    return render(request, template, context)


@requires(AuditPermission.VIEW_AUDIT_RECORD)
@require_POST
def audit_verify_now(request: StaffRequest) -> HttpResponse:
    """Check the chain and the tree against the latest signed checkpoint, now."""
    if denied := _ledger_view_allowed(request):
        return denied
    checkpoint = latest_checkpoint()
    signed = None
    problem = ""
    if checkpoint is not None:
        try:
            signed = signing.checkpoint_open(checkpoint.note)
        except signing.NoteError as error:
            problem = f"The stored checkpoint does not verify: {error}"
    result = audit_verify(checkpoint=signed)
    context = {"result": result, "signed": signed, "note_problem": problem, "limits": CHAIN_LIMITS}
    if request.htmx:
        return render(request, "audit/audit_page.html#verify-result", context)
    return render(
        request, "audit/audit_page.html", {**_page_context(request, request.GET), **context}
    )


@requires(AuditPermission.VIEW_AUDIT_RECORD)
@require_GET
def audit_checkpoint_download(request: StaffRequest) -> HttpResponse:
    if denied := _ledger_view_allowed(request):
        return denied
    checkpoint = latest_checkpoint()
    if checkpoint is None:
        return render_error_page(request, NotFound("No checkpoint has been signed yet."))
    response = HttpResponse(checkpoint.note, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="checkpoint-{checkpoint.tree_size}.txt"'
    )
    return response


@requires(AuditPermission.VIEW_AUDIT_RECORD)
@require_GET
def audit_public_key_download(request: StaffRequest) -> HttpResponse:
    """The verifying key as PEM (for openssl) with its C2SP verifier string."""
    if denied := _ledger_view_allowed(request):
        return denied
    verifier = signing.current_verifier()
    pem = (
        Ed25519PublicKey.from_public_bytes(verifier.public_key)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    response = HttpResponse(pem, content_type="application/x-pem-file")
    response["Content-Disposition"] = 'attachment; filename="clientdesk-audit-public-key.pem"'
    return response
