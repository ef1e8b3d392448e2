"""Permissions of the messaging app and the roles that hold them."""

from clientdesk.accounts.roles import Role
from clientdesk.core.permissions import AppPermission


class MessagingPermission(AppPermission):
    SEND_PRIVATE_MESSAGE = "messaging.send_private_message", "Send a private message"
    VIEW_MESSAGE = "messaging.view_message"
    MANAGE_TEMPLATES = "messaging.manage_templates", "Manage message templates"
    EXPORT_MESSAGES = "messaging.export_messages", "Export message logs"
    SEND_BROADCAST = "messaging.send_broadcast", "Send a broadcast"


ROLE_GRANTS = {
    Role.MANAGER: [
        MessagingPermission.SEND_PRIVATE_MESSAGE,
        MessagingPermission.VIEW_MESSAGE,
        MessagingPermission.MANAGE_TEMPLATES,
        MessagingPermission.EXPORT_MESSAGES,
        MessagingPermission.SEND_BROADCAST,
    ],
    Role.AGENT: [MessagingPermission.SEND_PRIVATE_MESSAGE, MessagingPermission.VIEW_MESSAGE],
    Role.VIEWER: [MessagingPermission.VIEW_MESSAGE],
    Role.INTEGRATION: [MessagingPermission.VIEW_MESSAGE],
}

# Reading the active templates: senders pick them, template managers write them (and alone also
# read the inactive ones). The Templates page, the panel's template search and the templates API
# all use this rule; templates ask `can.read_templates`.
READ_TEMPLATES = (MessagingPermission.SEND_PRIVATE_MESSAGE, MessagingPermission.MANAGE_TEMPLATES)

ACCESS_RULES = {"read_templates": READ_TEMPLATES}
