"""Clients: the model, search, the Clients page and the client details drawer."""

from django.apps import AppConfig


class ClientsConfig(AppConfig):
    name = "clientdesk.clients"
    label = "clients"
