"""The one-query permission backend answers as Django's ModelBackend does."""

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clientdesk.accounts.backends import OneQueryModelBackend
from clientdesk.accounts.models import User

pytestmark = pytest.mark.django_db


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)


def test_same_permissions_as_djangos_backend_in_one_query(make_user):
    agent = make_user("Agent")
    extra = Permission.objects.exclude(group__name="Agent").first()
    agent.user_permissions.add(extra)
    plain = make_user(None)
    inactive = make_user("Manager", is_active=False)
    superuser = make_user(None, is_superuser=True)
    for user in (agent, plain, inactive, superuser):
        expected = ModelBackend().get_all_permissions(_fresh(user))
        fresh = _fresh(user)
        with CaptureQueriesContext(connection) as queries:
            got = OneQueryModelBackend().get_all_permissions(fresh)
            assert OneQueryModelBackend().get_all_permissions(fresh) == got  # kept on the user
        assert got == expected, user.username
        assert len(queries) == (1 if user.is_active else 0)
    assert f"{extra.content_type.app_label}.{extra.codename}" in _fresh(agent).get_all_permissions()


def test_a_revoked_permission_is_gone_on_the_next_request(make_user):
    agent = make_user("Agent")
    assert _fresh(agent).has_perm("messaging.send_private_message")
    agent.groups.clear()
    assert not _fresh(agent).has_perm("messaging.send_private_message")
    group = Group.objects.get(name="Agent")
    agent.groups.add(group)
    group.permissions.remove(Permission.objects.get(codename="send_private_message"))
    assert not _fresh(agent).has_perm("messaging.send_private_message")
