"""Staff users, roles (Django groups), permissions and API tokens."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "clientdesk.accounts"
    label = "accounts"
    verbose_name = "Accounts"
