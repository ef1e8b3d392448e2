"""Permissions of the clients app and the roles that hold them."""

from clientdesk.accounts.roles import Role
from clientdesk.core.permissions import AppPermission


class ClientsPermission(AppPermission):
    VIEW_CLIENT = "clients.view_client"
    ADD_CLIENT = "clients.add_client"
    CHANGE_CLIENT = "clients.change_client"


ROLE_GRANTS = {
    Role.MANAGER: [
        ClientsPermission.VIEW_CLIENT,
        ClientsPermission.ADD_CLIENT,
        ClientsPermission.CHANGE_CLIENT,
    ],
    Role.AGENT: [
        ClientsPermission.VIEW_CLIENT,
        ClientsPermission.ADD_CLIENT,
        ClientsPermission.CHANGE_CLIENT,
    ],
    Role.VIEWER: [ClientsPermission.VIEW_CLIENT],
    Role.INTEGRATION: [
        ClientsPermission.VIEW_CLIENT,
        ClientsPermission.ADD_CLIENT,
        ClientsPermission.CHANGE_CLIENT,
    ],
}
