"""Keep the roles complete after every migrate (and test flush), including permissions of apps
added later."""

from typing import Any

from django.apps import apps
from django.contrib.auth.management import create_permissions

from clientdesk.accounts.roles import roles_sync


def sync_roles_after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    # post_migrate is sent once per app; act once, for the last app, when the permissions of
    # every app before it exist. Its own may not exist yet (this receiver was connected before
    # Django's), so make them first: it is idempotent.
    last = [config for config in apps.get_app_configs() if config.models_module][-1]
    if sender.label != last.label:
        return
    create_permissions(sender, verbosity=0, using=using)
    roles_sync(using=using)
