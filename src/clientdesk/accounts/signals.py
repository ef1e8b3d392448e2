"""Keep the roles complete after every migrate (and test flush): each app's grants are synced
when its own post_migrate is sent, since an app grants only its own permissions."""

from typing import Any

from django.apps import AppConfig
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured

from clientdesk.accounts.roles import Role
from clientdesk.core.permissions import app_role_grants


def roles_sync(*, app_config: AppConfig, using: str = "default") -> None:
    """Make every role exist and hold the app's grants; the Administrator holds every permission
    of the app. Permissions granted to a role by hand are kept."""
    # Django makes the app's permissions in a post_migrate receiver that may run after this
    # one; making them first is idempotent.
    create_permissions(app_config, verbosity=0, using=using)
    app_perms = Permission.objects.using(using).filter(content_type__app_label=app_config.label)
    groups = {role: Group.objects.using(using).get_or_create(name=role)[0] for role in Role}
    groups[Role.ADMINISTRATOR].permissions.add(*app_perms)
    for role, perms in app_role_grants(app_config).items():
        codenames = {perm.codename for perm in perms}
        found = list(app_perms.filter(codename__in=codenames))
        missing = codenames - {perm.codename for perm in found}
        if missing:
            raise ImproperlyConfigured(
                f"{app_config.label} grants {sorted(missing)} to {role}, but no such permission "
                "exists: declare it in the model's Meta.permissions."
            )
        groups[Role(role)].permissions.add(*found)


def sync_roles_after_migrate(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    roles_sync(app_config=sender, using=using)
