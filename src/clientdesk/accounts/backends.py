"""Django's model backend, reading a user's permissions in one query instead of two, and keeping
the answer in process memory for a few seconds (accounts/auth_cache.py)."""

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db.models import Q

from clientdesk.accounts import auth_cache


class OneQueryModelBackend(ModelBackend):
    """Every API request authenticates afresh, so `has_perm` would load the user's permissions
    on each one: Django asks for the user's own and the groups' in two queries; this asks once,
    and keeps the set per user for `AUTH_CACHE_SECONDS` (a change of roles or permissions in
    this process empties the cache at once). The answer is also kept on the user object for the
    request, as Django's is, under a name of our own (Django's `_perm_cache` is private to its
    backend and may change without notice)."""

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "clientdesk_permissions"):
            since = auth_cache.generation()
            cached = auth_cache.permissions_get(user_obj.pk)
            if cached is None:
                cached = frozenset(self._permissions_read(user_obj))
                auth_cache.permissions_store(user_obj.pk, cached, since=since)
            user_obj.clientdesk_permissions = set(cached)
        return user_obj.clientdesk_permissions

    @staticmethod
    def _permissions_read(user_obj: Any) -> set[str]:
        if user_obj.is_superuser:
            perms = Permission.objects.all()
        else:
            perms = Permission.objects.filter(Q(user=user_obj) | Q(group__user=user_obj)).distinct()
        return {
            f"{app_label}.{codename}"
            for app_label, codename in perms.values_list("content_type__app_label", "codename")
        }
