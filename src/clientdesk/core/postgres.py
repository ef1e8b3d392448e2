"""Connections of our own to Django's PostgreSQL database, beside its pool: a connection that
LISTENs stays open for as long as it waits, which a pooled one must not."""

from typing import Any

from django.db import connection


def listen_connection_params() -> dict[str, Any]:
    """`psycopg.connect()` keywords for the default database, as Django's settings name it."""
    database = connection.settings_dict
    named = {
        "dbname": database["NAME"],
        "user": database["USER"],
        "password": database["PASSWORD"],
        "host": database["HOST"],
        "port": database["PORT"],
    }
    return {key: value for key, value in named.items() if value}
