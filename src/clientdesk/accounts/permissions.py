"""Permissions of the accounts app. Administering staff (users, their roles, API tokens) is the
Administrator's alone: the role sync gives the Administrator every permission of every app and
no other role is granted `accounts.change_user`, so holding it is the rule (a superuser holds
every permission too)."""

from clientdesk.core.permissions import AppPermission


class AccountsPermission(AppPermission):
    CHANGE_USER = "accounts.change_user"


# `@requires(*ADMINISTER)` on every page of the Administration area; `{% if can.administer %}`.
ADMINISTER = (AccountsPermission.CHANGE_USER,)
ACCESS_RULES = {"administer": ADMINISTER}
