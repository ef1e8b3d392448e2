"""Staff users, roles (Django groups), permissions and API tokens."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "clientdesk.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from clientdesk.accounts import schema  # noqa: F401 - registers the OpenAPI auth scheme
        from clientdesk.accounts.signals import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="roles-sync")
