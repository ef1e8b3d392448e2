"""Staff users, roles (Django groups), permissions and API tokens."""

from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save


class AccountsConfig(AppConfig):
    name = "clientdesk.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from clientdesk.accounts import schema  # noqa: F401 - registers the OpenAPI auth scheme
        from clientdesk.accounts.signals import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="roles-sync")
        self._forget_cached_access_on_change()

    @staticmethod
    def _forget_cached_access_on_change() -> None:
        """A token revoked or deleted, a user deactivated, roles or permissions changed: the
        process's cache of tokens and permission sets is emptied (accounts/auth_cache.py)."""
        from django.contrib.auth.models import Group, Permission

        from clientdesk.accounts import auth_cache
        from clientdesk.accounts.models import ApiToken, User

        for model in (ApiToken, User, Group, Permission):
            for signal in (post_save, post_delete):
                signal.connect(
                    auth_cache.changed, sender=model, dispatch_uid=f"auth-cache-{model.__name__}"
                )
        for through in (
            User.groups.through,
            User.user_permissions.through,
            Group.permissions.through,
        ):
            m2m_changed.connect(
                auth_cache.changed, sender=through, dispatch_uid=f"auth-cache-{through.__name__}"
            )
