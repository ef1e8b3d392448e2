"""Every change the Django admin can make is in the audit ledger with the acting administrator,
or the admin cannot make it (issue 15, item 4). The real admin is driven with the test client
as a superuser; a guard walks every registered model admin and fails for any way of changing
data that `LEDGER_PATHS` does not name, so a future registration cannot slip through."""

import json
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin import AdminSite, ModelAdmin
from django.contrib.auth.models import Group, Permission
from django.db.models import Model
from django.test import RequestFactory
from django.urls import reverse

from clientdesk.accounts.models import ApiToken, User
from clientdesk.accounts.roles import Role
from clientdesk.accounts.services import api_token_create
from clientdesk.audit.models import ActivityEvent, AuditEntry, AuditRecord
from clientdesk.audit.services import audit_sequence
from clientdesk.clients.models import Client
from clientdesk.delivery.models import Delivery
from clientdesk.messaging.models import Message, MessageTemplate
from clientdesk.messaging.services.templates import template_create
from tests.sending import send_text

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"

# (model label, capability) -> the ledger action that records it. A capability is "add",
# "change", "delete", "action:<name>" (changelist actions, "delete selected" included),
# "inline:<model>:<add|change|delete>" or "view:<name>" (an extra admin page such as the
# password form). Everything else a superuser could do in the admin must be refused.
LEDGER_PATHS = {
    ("accounts.user", "add"): "user.created",
    ("accounts.user", "change"): "user.changed",
    ("accounts.user", "view:auth_user_password_change"): "user.password_changed",
    ("auth.group", "add"): "role.created",
    ("auth.group", "change"): "role.renamed",
    ("accounts.apitoken", "action:revoke"): "api_token.revoked",
    ("clients.client", "add"): "client.created",
    ("clients.client", "change"): "client.changed",
    ("messaging.messagetemplate", "change"): "template.updated",
    ("axes.accessattempt", "delete"): "login.lockout_reset",
    ("axes.accessattempt", "action:delete_selected"): "login.lockout_reset",
}
_STANDARD_VIEWS = {"changelist", "add", "history", "delete", "change"}


def _capabilities(model_admin: ModelAdmin, request: Any) -> set[str]:
    """Every way this model admin lets `request.user` change data."""
    found = {
        op
        for op, allowed in [
            ("add", model_admin.has_add_permission(request)),
            ("change", model_admin.has_change_permission(request)),
            ("delete", model_admin.has_delete_permission(request)),
        ]
        if allowed
    }
    found |= {f"action:{name}" for name in model_admin.get_actions(request)}
    for inline in model_admin.get_inline_instances(request):
        label = inline.model._meta.label_lower
        for op, allowed in [
            ("add", inline.has_add_permission(request, None)),
            ("change", inline.has_change_permission(request, None)),
            ("delete", inline.has_delete_permission(request, None)),
        ]:
            if allowed:
                found.add(f"inline:{label}:{op}")
    prefix = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}_"
    for pattern in model_admin.urls:
        name = getattr(pattern, "name", None)
        if name and name.removeprefix(prefix) not in _STANDARD_VIEWS:
            found.add(f"view:{name.removeprefix(prefix)}")
    return found


def _registered(site: AdminSite) -> list[tuple[type[Model], ModelAdmin]]:
    return [
        (model, site.get_model_admin(model))
        for model in apps.get_models()
        if site.is_registered(model)
    ]


def _undeclared(site: AdminSite, request: Any) -> list[str]:
    found = []
    for model, model_admin in _registered(site):
        label = model._meta.label_lower
        for capability in sorted(_capabilities(model_admin, request)):
            if (label, capability) not in LEDGER_PATHS:
                found.append(f"{label}: {capability}")
    return found


@pytest.fixture
def superuser(make_user) -> User:
    return make_user(
        Role.ADMINISTRATOR,
        username="root",
        first_name="Ada",
        last_name="Root",
        is_staff=True,
        is_superuser=True,
    )


@pytest.fixture
def as_admin(client, superuser):
    client.force_login(superuser)
    return client


def _request_as(user: User) -> Any:
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_every_way_the_admin_changes_data_is_declared_with_its_ledger_action(superuser):
    request = _request_as(superuser)
    assert not _undeclared(admin.site, request), (
        "admin changes without a ledger path (record them through a service, or make them "
        "read-only):\n" + "\n".join(_undeclared(admin.site, request))
    )
    declared_now = {
        (model._meta.label_lower, capability)
        for model, model_admin in _registered(admin.site)
        for capability in _capabilities(model_admin, request)
    }
    assert set(LEDGER_PATHS) == declared_now, "stale entries in LEDGER_PATHS"
    assert {m._meta.label_lower for m, _ in _registered(admin.site)} >= {
        "axes.accessattempt",
        "axes.accesslog",
        "axes.accessfailurelog",
        "auth.group",
        "accounts.user",
    }


def test_the_guard_catches_a_model_admin_registered_without_a_ledger_path(superuser):
    site = AdminSite(name="elsewhere")
    site.register(Permission)  # a plain ModelAdmin: add, change, delete, delete selected
    assert _undeclared(site, _request_as(superuser)) == [
        "auth.permission: action:delete_selected",
        "auth.permission: add",
        "auth.permission: change",
        "auth.permission: delete",
    ]


# --- driving the admin ----------------------------------------------------------------------


def _value(field: forms.Field, bound: forms.BoundField) -> Any:
    value = bound.value()
    if isinstance(field, forms.BooleanField):
        return "on" if value else None
    if isinstance(field, forms.ModelMultipleChoiceField):
        return [str(v) for v in value or []]
    if isinstance(field, forms.JSONField) and not isinstance(value, str):
        return json.dumps(value)
    return "" if value is None else str(value)


def _form_data(form: forms.BaseForm) -> dict[str, Any]:
    data = {}
    for name, field in form.fields.items():
        if field.disabled:
            continue
        value = _value(field, form[name])
        if value is not None:
            data[form.add_prefix(name)] = value
    return data


def _post_form(client, url: str, changes: dict[str, Any], drop: tuple[str, ...] = ()):
    """Submit the admin form at `url` as a browser would, with `changes` made by hand."""
    page = client.get(url)
    assert page.status_code == 200, url
    data = _form_data(page.context["adminform"].form)
    for inline in page.context.get("inline_admin_formsets", []):
        formset = inline.formset
        data.update(_form_data(formset.management_form))
        for form in formset.forms:
            data.update(_form_data(form))
    data.update(changes)
    for name in drop:
        data.pop(name, None)
    return client.post(url, data)


def _change_url(obj: Model) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def _recorded(action: str, actor: User) -> list[AuditEntry]:
    entries = list(AuditEntry.objects.filter(action=action).order_by("id"))
    assert entries, f"no {action} record"
    for entry in entries:
        assert (entry.actor_type, entry.actor_id) == ("staff", str(actor.pk)), action
        assert entry.actor_label == "Ada Root"
    return entries


def _changed(client, obj: Model, **changes: Any):
    response = _post_form(client, _change_url(obj), changes)
    assert response.status_code == 302, response.content.decode()[:3000]
    return response


@pytest.mark.parametrize(
    ("field", "value", "before", "after"),
    [
        ("first_name", "Eve", "Viewer", "Eve"),
        ("email", "eve@example.com", "", "eve@example.com"),
        ("is_active", None, True, False),
        ("is_staff", "on", False, True),
        ("is_superuser", "on", False, True),
        ("username", "renamed", None, "renamed"),
    ],
)
def test_a_users_fields_changed_in_the_admin_are_recorded(
    as_admin, superuser, make_user, field, value, before, after
):
    user = make_user(Role.VIEWER)
    before = user.username if before is None else before
    # An unticked checkbox is a field the browser leaves out.
    response = _post_form(
        as_admin, _change_url(user), {field: value} if value else {}, drop=() if value else (field,)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = _recorded("user.changed", superuser)
    assert entry.data["before"] == {field: before}
    assert entry.data["after"] == {field: after}
    assert getattr(User.objects.get(pk=user.pk), field) == after


def test_a_users_roles_and_own_permissions_changed_in_the_admin_are_recorded(
    as_admin, superuser, make_user
):
    user = make_user(Role.VIEWER)
    export = Permission.objects.get(codename="export_messages")
    _changed(
        as_admin,
        user,
        groups=[str(Group.objects.get(name=Role.AGENT).pk)],
        user_permissions=[str(export.pk)],
    )
    (roles,) = _recorded("user.roles_changed", superuser)
    assert (roles.data["before"], roles.data["after"]) == (["Viewer"], ["Agent"])
    (permissions,) = _recorded("user.permissions_changed", superuser)
    assert permissions.data["added"] == ["messaging.export_messages"]
    _changed(as_admin, user, user_permissions=[])
    assert _recorded("user.permissions_changed", superuser)[1].data["removed"] == [
        "messaging.export_messages"
    ]
    assert not AuditEntry.objects.filter(action="user.changed").exists()


def test_a_user_added_in_the_admin_is_recorded_without_the_password(as_admin, superuser):
    response = as_admin.post(
        reverse("admin:accounts_user_add"),
        {
            "username": "newcomer",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = _recorded("user.created", superuser)
    newcomer = User.objects.get(username="newcomer")
    assert entry.object_id == str(newcomer.pk)
    assert entry.data["username"] == "newcomer" and entry.data["password"] is True
    assert newcomer.check_password(PASSWORD)
    assert newcomer.password not in json.dumps(entry.data)


@pytest.mark.parametrize("usable", [True, False])
def test_a_password_set_or_disabled_in_the_admin_is_recorded(
    as_admin, superuser, make_user, usable
):
    user = make_user(Role.VIEWER)
    old_hash = user.password
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    new = "another " + PASSWORD
    data = (
        {"usable_password": "true", "password1": new, "password2": new}
        if usable
        else {"usable_password": "false", "unset-password": "1"}
    )
    response = as_admin.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = _recorded("user.password_changed", superuser)
    user.refresh_from_db()
    assert user.password != old_hash and user.has_usable_password() is usable
    assert entry.data == {"username": user.username, "usable": usable}


def test_a_refused_password_form_records_nothing(as_admin, make_user):
    user = make_user(Role.VIEWER)
    url = reverse("admin:auth_user_password_change", args=[user.pk])
    response = as_admin.post(url, {"usable_password": "true", "password1": "a", "password2": "b"})
    assert response.status_code == 200
    assert not AuditEntry.objects.filter(action="user.password_changed").exists()


def test_a_role_added_renamed_and_regranted_in_the_admin_is_recorded(as_admin, superuser):
    export = Permission.objects.get(codename="export_messages")
    response = as_admin.post(
        reverse("admin:auth_group_add"), {"name": "Auditors", "permissions": [str(export.pk)]}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    role = Group.objects.get(name="Auditors")
    (created,) = _recorded("role.created", superuser)
    assert created.data == {"role": "Auditors"} and created.object_id == str(role.pk)
    (granted,) = _recorded("role.permissions_changed", superuser)
    assert granted.data["added"] == ["messaging.export_messages"]
    _changed(as_admin, role, name="Outside auditors")
    (renamed,) = _recorded("role.renamed", superuser)
    assert renamed.data == {"before": "Auditors", "after": "Outside auditors"}


def test_a_client_added_and_changed_in_the_admin_is_recorded(as_admin, superuser):
    response = as_admin.post(
        reverse("admin:clients_client_add"),
        {
            "external_id": "ADM-1",
            "first_name": "Ana",
            "last_name": "<b>García</b>",
            "email": "",
            "phone": "",
            "language": "es",
            "attributes": "{}",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    created = Client.objects.get(external_id="ADM-1")
    (entry,) = _recorded("client.created", superuser)
    assert entry.object_id == str(created.pk) and entry.data["last_name"] == "<b>García</b>"
    _post_form(as_admin, _change_url(created), {}, drop=("is_active",))
    (changed,) = _recorded("client.changed", superuser)
    assert changed.data == {"before": {"is_active": True}, "after": {"is_active": False}}
    assert Client.objects.get(pk=created.pk).deactivated_at is not None


@pytest.mark.parametrize(
    ("field", "value", "recorded"),
    [
        ("name", "Renamed reminder", {"name": "Renamed reminder"}),
        ("is_active", None, {"is_active": False}),
        ("expects_reply", "on", {"expects_reply": True}),
    ],
)
def test_a_template_changed_in_the_admin_is_recorded(as_admin, superuser, field, value, recorded):
    version = template_create(author=superuser, name="Reminder", body="Hi", language="en")
    url = _change_url(version.template)
    response = _post_form(
        as_admin, url, {field: value} if value else {}, drop=() if value else (field,)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    (entry,) = _recorded("template.updated", superuser)
    assert entry.data == recorded
    assert version.template.versions.count() == 1  # no text changed: no new version


def test_a_template_name_taken_is_a_form_error_not_a_crash(as_admin, superuser):
    template_create(author=superuser, name="Taken", body="Hi", language="en")
    other = template_create(author=superuser, name="Other", body="Hi", language="en")
    response = _post_form(as_admin, _change_url(other.template), {"name": "TAKEN"})
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert not AuditEntry.objects.filter(action="template.updated").exists()


def test_an_api_token_revoked_in_the_admin_is_recorded(as_admin, superuser, make_user):
    token, _ = api_token_create(user=make_user(Role.AGENT))
    response = as_admin.post(
        reverse("admin:accounts_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [str(token.pk)]},
    )
    assert response.status_code == 302
    (entry,) = _recorded("api_token.revoked", superuser)
    assert entry.object_id == str(token.pk)


def _locked_out(client, make_user) -> AccessAttempt:
    """Fail to sign in until locked out, through the real login page."""
    user = make_user(Role.AGENT)
    for _ in range(6):
        client.post(
            reverse("login"),
            {"username": user.username, "password": "wrong"},
            REMOTE_ADDR="203.0.113.9",
        )
    return AccessAttempt.objects.get(username=user.username)


@pytest.mark.parametrize("how", ["delete", "delete selected"])
def test_a_lockout_reset_in_the_admin_is_recorded(client, superuser, make_user, how):
    attempt = _locked_out(client, make_user)
    client.force_login(superuser)
    if how == "delete":
        url = reverse("admin:axes_accessattempt_delete", args=[attempt.pk])
        response = client.post(url, {"post": "yes"})
    else:
        response = client.post(
            reverse("admin:axes_accessattempt_changelist"),
            {"action": "delete_selected", "_selected_action": [str(attempt.pk)], "post": "yes"},
        )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not AccessAttempt.objects.filter(pk=attempt.pk).exists()
    (entry,) = _recorded("login.lockout_reset", superuser)
    assert entry.data["username"] == attempt.username
    assert entry.data["ip_address"] == "203.0.113.9"
    assert entry.data["failures"] >= 5


# --- what the admin refuses -------------------------------------------------------------------


@pytest.fixture
def one_of_each(client, make_user, make_client, superuser) -> dict[str, Model]:
    """An object of every registered model, made through the real services and pages."""
    agent = make_user(Role.AGENT)
    target = make_client()
    send_text(agent, target, "Hello")
    audit_sequence()
    template_create(author=superuser, name="Welcome", body="Hi", language="en")
    api_token_create(user=agent)
    _locked_out(client, make_user)
    client.post(reverse("login"), {"username": agent.username, "password": PASSWORD})
    objects = {
        model._meta.label_lower: model._default_manager.order_by("pk").first()
        for model in [
            User,
            Group,
            ApiToken,
            Client,
            ActivityEvent,
            AuditRecord,
            Delivery,
            Message,
            MessageTemplate,
            AccessAttempt,
            AccessLog,
            AccessFailureLog,
        ]
    }
    return {label: obj for label, obj in objects.items() if obj is not None}


def test_every_change_the_admin_does_not_record_is_refused(client, superuser, one_of_each):
    request = _request_as(superuser)
    client.force_login(superuser)
    recorded = AuditEntry.objects.count()
    tried = 0
    for model, model_admin in _registered(admin.site):
        label = model._meta.label_lower
        capabilities = _capabilities(model_admin, request)
        info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        if "add" not in capabilities:
            assert client.post(reverse(f"{info}_add"), {}).status_code == 403, label
            tried += 1
        obj = one_of_each.get(label)
        if obj is None:
            continue
        before = model._default_manager.count()
        if "change" not in capabilities:
            assert client.post(reverse(f"{info}_change", args=[obj.pk]), {}).status_code == 403
            tried += 1
        if "delete" not in capabilities:
            response = client.post(reverse(f"{info}_delete", args=[obj.pk]), {"post": "yes"})
            assert response.status_code == 403, label
            tried += 1
        if "action:delete_selected" not in capabilities:
            client.post(
                reverse(f"{info}_changelist"),
                {"action": "delete_selected", "_selected_action": [str(obj.pk)], "post": "yes"},
            )
            tried += 1
        assert model._default_manager.count() == before, label
    assert tried >= 30
    assert AuditEntry.objects.count() == recorded


def test_history_and_evidence_pages_still_show(client, superuser, one_of_each):
    client.force_login(superuser)
    for label, obj in one_of_each.items():
        app_label, model_name = label.split(".")
        assert client.get(reverse(f"admin:{app_label}_{model_name}_changelist")).status_code == 200
        assert client.get(_change_url(obj)).status_code == 200, label


def test_the_axes_cleanup_action_is_gone(as_admin):
    page = as_admin.get(reverse("admin:axes_accessattempt_changelist")).content.decode()
    assert "cleanup_expired_attempts" not in page
