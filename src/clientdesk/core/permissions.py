"""Permissions by name: each app declares its own in `<app>/permissions.py`; this module reads
them for the role sync, the URL gate and the templates' `can` helper.

An app may also name an access rule that several permissions satisfy (any of them) in its
`ACCESS_RULES`: `{"read_templates": (SEND_PRIVATE_MESSAGE, MANAGE_TEMPLATES)}`. The same tuple
gates pages (`@requires(*rule)`) and API views (`required_permissions`), and templates ask
`{% if can.read_templates %}`, so the rule is written once."""

import functools
import importlib
from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import ModuleType
from typing import Any

from django.apps import AppConfig, apps
from django.core.exceptions import ImproperlyConfigured


class AppPermission(StrEnum):
    """A Django permission as `"app_label.codename"`, usable as-is with `user.has_perm`.

    A member may carry the name shown in the UI; those with a name are the app's own
    (`Meta.permissions`), those without are Django's default model permissions."""

    label: str

    def __new__(cls, value: str, label: str = "") -> "AppPermission":
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @property
    def app_label(self) -> str:
        return self.value.split(".", 1)[0]

    @property
    def codename(self) -> str:
        return self.value.split(".", 1)[1]

    @property
    def display_name(self) -> str:
        """The name shown in the UI (Django's own for its default model permissions)."""
        return self.label or f"Can {self.codename.replace('_', ' ', 1)}"

    @classmethod
    def model_meta(cls) -> Any:
        """The `Meta.permissions` of the model that carries this app's own permissions."""
        return [(member.codename, member.label) for member in cls if member.label]


def permissions_module(app_config: AppConfig) -> ModuleType | None:
    try:
        return importlib.import_module(f"{app_config.name}.permissions")
    except ModuleNotFoundError as error:
        if error.name != f"{app_config.name}.permissions":
            raise
        return None


def app_role_grants(app_config: AppConfig) -> Mapping[str, Iterable[AppPermission]]:
    """The app's `ROLE_GRANTS` (role name -> permissions). An app grants only its own
    permissions, so each app can be read alone when its migrations have run."""
    module = permissions_module(app_config)
    grants: Mapping[str, Iterable[AppPermission]] = getattr(module, "ROLE_GRANTS", {})
    for role, perms in grants.items():
        for perm in perms:
            if perm.app_label != app_config.label:
                raise ImproperlyConfigured(
                    f"{app_config.name}.permissions grants {perm} to {role}: an app grants "
                    "only its own permissions."
                )
    return grants


@functools.cache
def all_permissions() -> dict[str, AppPermission]:
    """Every declared permission by its short name (the member name in lower case)."""
    found: dict[str, AppPermission] = {}
    for app_config in apps.get_app_configs():
        module = permissions_module(app_config)
        if module is None:
            continue
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, AppPermission)
                and value is not AppPermission
                and value.__module__ == module.__name__
            ):
                for member in value:
                    name = member.name.lower()
                    if name in found and found[name] != member:
                        raise ImproperlyConfigured(f"Two permissions are both called {name!r}.")
                    found[name] = member
    return found


@functools.cache
def all_access_rules() -> dict[str, tuple[AppPermission, ...]]:
    """Every app's named access rules (`ACCESS_RULES` in its permissions module)."""
    found: dict[str, tuple[AppPermission, ...]] = {}
    for app_config in apps.get_app_configs():
        rules: Mapping[str, tuple[AppPermission, ...]] = getattr(
            permissions_module(app_config), "ACCESS_RULES", {}
        )
        for name, perms in rules.items():
            if name in found or name in all_permissions():
                raise ImproperlyConfigured(f"The access rule {name!r} is declared twice.")
            found[name] = tuple(perms)
    return found


class UnknownPermission(Exception):
    """Raised (not silenced by the template engine) for a misspelt `can.<name>`."""


class PermissionFlags:
    """`can.send_private_message` in templates: whether the request's user holds it;
    `can.read_templates`: whether they hold any permission of that access rule."""

    def __init__(self, user: Any) -> None:
        self._user = user

    def __getattr__(self, name: str) -> bool:
        if name.startswith("_"):
            raise AttributeError(name)
        perms: tuple[AppPermission, ...] | None = all_access_rules().get(name)
        if perms is None:
            perm = all_permissions().get(name)
            if perm is None:
                raise UnknownPermission(f"No permission or access rule is declared as {name!r}.")
            perms = (perm,)
        return self._user is not None and any(self._user.has_perm(p) for p in perms)
