"""The Templates page: list, search, create, edit with a live preview, deactivate; for senders
who do not manage templates, the same list and a read-only page per template."""

import uuid
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clientdesk.accounts.requests import StaffRequest
from clientdesk.clients.selectors import client_get, client_search
from clientdesk.clients.validators import LANGUAGE_CHOICES
from clientdesk.core.errors import ApplicationError
from clientdesk.core.gate import requires
from clientdesk.core.pagination import paginate, parse_page
from clientdesk.core.ui import render_error_page
from clientdesk.messaging.permissions import READ_TEMPLATES, MessagingPermission
from clientdesk.messaging.rendering import CATALOGUE
from clientdesk.messaging.selectors import (
    template_current_version,
    template_get,
    template_get_readable,
    templates_readable,
    templates_with_current_versions,
)
from clientdesk.messaging.services.sending import message_compose, message_template_text
from clientdesk.messaging.services.templates import (
    Rename,
    SetActive,
    SetExpectsReply,
    SetVariant,
    template_change,
    template_create,
)

PAGE_SIZE = 25


@requires(*READ_TEMPLATES)
@require_GET
def template_list(request: StaffRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:120]
    page = paginate(
        templates_readable(user=request.user, query=query, with_inactive=True),
        page=parse_page(request.GET.get("page")),
        size=PAGE_SIZE,
    )
    context = {
        "query": query,
        "page": page,
        "rows": templates_with_current_versions(page.items),
        "nav": "templates",
    }
    template = "messaging/templates/list.html"
    if request.htmx and request.htmx.target == "template-table":
        template += "#template-table"
    return render(request, template, context)


def _editor_context(**extra: object) -> dict[str, object]:
    return {
        "nav": "templates",
        "variables": CATALOGUE.values(),
        "languages": LANGUAGE_CHOICES,
        **extra,
    }


@requires(MessagingPermission.MANAGE_TEMPLATES)
@require_http_methods(["GET", "POST"])
def template_new(request: StaffRequest) -> HttpResponse:
    form: dict[str, Any] = {"name": "", "language": "en", "body": "", "expects_reply": False}
    if request.method == "POST":
        form = {k: request.POST.get(k, "") for k in ("name", "language", "body")}
        form["expects_reply"] = request.POST.get("expects_reply") == "1"
        try:
            version = template_create(author=request.user, **form)
        except ApplicationError as error:
            context = _editor_context(form=form, error=error, creating=True)
            return render(request, "messaging/templates/edit.html", context, status=error.status)
        messages.success(
            request,
            gettext("Template “%(name)s” created (version 1).") % {"name": version.template.name},
        )
        return redirect("messaging:template-detail", template_id=version.template_id)
    return render(
        request, "messaging/templates/edit.html", _editor_context(form=form, creating=True)
    )


@requires(*READ_TEMPLATES)
@require_http_methods(["GET", "POST"])
def template_detail(request: StaffRequest, template_id: uuid.UUID) -> HttpResponse:
    """Template managers get the editor; other readers the template read-only."""
    if request.method == "GET" and not request.user.has_perm(MessagingPermission.MANAGE_TEMPLATES):
        return _template_read_only(request, template_id)
    return _template_edit(request, template_id)


def _template_read_only(request: StaffRequest, template_id: uuid.UUID) -> HttpResponse:
    try:
        template = template_get_readable(user=request.user, template_id=template_id)
    except ApplicationError as error:
        return render_error_page(request, error)
    version = template_current_version(template=template)
    names = dict(LANGUAGE_CHOICES)
    context = {
        "nav": "templates",
        "template": template,
        "version": version,
        "variants": [
            (code, names.get(code, code), body, code == version.default_language)
            for code, body in sorted(version.variants.items())
        ],
    }
    return render(request, "messaging/templates/detail.html", context)


@requires(MessagingPermission.MANAGE_TEMPLATES)
def _template_edit(request: StaffRequest, template_id: uuid.UUID) -> HttpResponse:
    try:
        template = template_get(template_id=template_id)
    except ApplicationError as error:
        return render_error_page(request, error)
    version = template_current_version(template=template)
    language = request.GET.get("language") or version.default_language
    form: dict[str, Any] = {
        "name": template.name,
        "language": language,
        "body": version.variants.get(language, ""),
        "expects_reply": template.expects_reply,
    }
    status = 200
    problem: ApplicationError | None = None
    if request.method == "POST":
        form = {k: request.POST.get(k, "") for k in ("name", "language", "body")}
        form["expects_reply"] = request.POST.get("expects_reply") == "1"
        try:
            version = template_change(
                author=request.user,
                template_id=template.id,
                actions=[
                    Rename(form["name"]),
                    SetExpectsReply(form["expects_reply"]),
                    SetVariant(form["body"], form["language"]),
                ],
            )
        except ApplicationError as failure:
            problem, status = failure, failure.status
        else:
            messages.success(
                request,
                gettext("Saved “%(name)s” as version %(version)s.")
                % {"name": version.template.name, "version": version.version},
            )
            return redirect(
                f"{request.path}?language={form['language']}"  # stay on the variant just edited
            )
    context = _editor_context(
        template=template,
        version=version,
        form=form,
        error=problem,
        versions=template.versions.select_related("author").order_by("-version")[:20],
    )
    return render(request, "messaging/templates/edit.html", context, status=status)


@requires(MessagingPermission.MANAGE_TEMPLATES)
@require_POST
def template_activation(request: StaffRequest, template_id: uuid.UUID) -> HttpResponse:
    """Deactivate a template (`active` other than "1") or reactivate it; its versions stay."""
    active = request.POST.get("active") == "1"
    try:
        version = template_change(
            author=request.user,
            template_id=template_id,
            actions=[SetActive(active)],
        )
    except ApplicationError as error:
        return render_error_page(request, error)
    done = (
        gettext("Template “%(name)s” reactivated.")
        if active
        else gettext("Template “%(name)s” deactivated.")
    )
    messages.success(request, done % {"name": version.template.name})
    return redirect("messaging:template-detail", template_id=version.template_id)


@requires(MessagingPermission.SEND_PRIVATE_MESSAGE, MessagingPermission.MANAGE_TEMPLATES)
@require_GET
def preview_clients(request: StaffRequest) -> HttpResponse:
    """Up to ten clients matching `q`, to choose whom the template preview is rendered for."""
    clients = client_search(query=request.GET.get("q", "")[:200], size=10).items
    return render(request, "messaging/templates/preview_clients.html", {"clients": clients})


@requires(MessagingPermission.SEND_PRIVATE_MESSAGE, MessagingPermission.MANAGE_TEMPLATES)
@require_POST
def preview(request: StaffRequest) -> HttpResponse:
    """Render posted text for the chosen client: the live preview of the editor and the panel."""
    body = request.POST.get("body", "").replace("\r\n", "\n")
    client_id = request.POST.get("preview_client") or request.POST.get("client_id", "")
    template_id = request.POST.get("template_id") or None
    context: dict[str, object] = {}
    try:
        if not client_id:
            context["hint"] = "Choose a client to preview the message for."
        elif not template_id and not body.strip():
            context["hint"] = "Type a message to see exactly what the client will receive."
        else:
            client = client_get(client_id=client_id)
            context["client"] = client
            if template_id and not body.strip():
                # A template just chosen: its text for this client goes into the box to edit.
                context["template_text"] = message_template_text(
                    sender=request.user, client=client, template_id=template_id
                )
            context["composed"] = message_compose(
                sender=request.user,
                client=client,
                body=body if body.strip() else None,
                template_id=template_id,
            )
    except ApplicationError as error:
        context["error"] = error
    return render(request, "messaging/templates/preview.html", context)
