"""Permissions of the outreach app: its settings (quiet hours, default zone, weekly cap) are the
Administrator's alone. Sending a broadcast is messaging's `messaging.send_broadcast`."""

from clientdesk.core.permissions import AppPermission


class OutreachPermission(AppPermission):
    MANAGE_OUTREACH_SETTINGS = "outreach.manage_outreach_settings", "Manage outreach settings"
