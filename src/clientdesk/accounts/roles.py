"""The roles of the public contract, as Django groups with their permissions."""

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
}
ADMINISTRATOR = "Administrator"
ROLES = [ADMINISTRATOR, *ROLE_PERMISSIONS]
