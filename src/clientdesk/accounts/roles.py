"""The roles of the public contract, as Django groups. Which permissions a role holds is declared
by each app in its `permissions.py` (`ROLE_GRANTS`); `accounts/signals.py` syncs them."""

from enum import StrEnum


class Role(StrEnum):
    ADMINISTRATOR = "Administrator"  # holds every permission of every app
    MANAGER = "Manager"
    AGENT = "Agent"
    VIEWER = "Viewer"
    INTEGRATION = "Integration"  # the service account of the business's own portal backend


ROLES = list(Role)
