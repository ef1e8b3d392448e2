"""The roles of the public contract, as Django groups with their permissions."""

from django.contrib.auth.models import Group, Permission

# (app_label, codename) per role; the Administrator role gets every permission.
ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    "Manager": [
        ("messaging", "send_private_message"),
        ("messaging", "view_message"),
        ("messaging", "manage_templates"),
        ("messaging", "export_messages"),
    ],
    "Agent": [
        ("messaging", "send_private_message"),
        ("messaging", "view_message"),
    ],
    "Viewer": [
        ("messaging", "view_message"),
    ],
    # The service account of the business's own portal backend.
    "Integration": [
        ("portal", "issue_session"),
        ("messaging", "view_message"),
        ("clients", "add_client"),
        ("clients", "change_client"),
    ],
}
ADMINISTRATOR = "Administrator"
ROLES = [ADMINISTRATOR, *ROLE_PERMISSIONS]


def roles_sync(*, using: str = "default") -> None:
    """Make every role exist and hold at least its contract permissions; the Administrator
    role holds every permission. Permissions granted by hand to a role are kept."""
    admin, _ = Group.objects.using(using).get_or_create(name=ADMINISTRATOR)
    admin.permissions.add(*Permission.objects.using(using).exclude(group=admin))
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role)
        group.permissions.add(
            *(
                Permission.objects.using(using).get(
                    content_type__app_label=app_label, codename=codename
                )
                for app_label, codename in perms
            )
        )
