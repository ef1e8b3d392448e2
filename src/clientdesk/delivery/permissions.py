"""Permissions of the delivery app: integration settings are the Administrator's alone."""

from clientdesk.core.permissions import AppPermission


class DeliveryPermission(AppPermission):
    MANAGE_INTEGRATION = "delivery.manage_integration", "Manage integration settings"
