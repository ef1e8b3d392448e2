"""A connection of our own (for LISTEN) reaches the database Django uses, as the same role."""

import psycopg
import pytest
from django.db import connection

from clientdesk.core.postgres import listen_connection_params

pytestmark = pytest.mark.django_db


def test_listen_connection_reaches_djangos_database() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("only PostgreSQL announces work over LISTEN")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), current_user")
        expected = cursor.fetchone()
    with psycopg.connect(**listen_connection_params(), autocommit=True) as own:
        assert own.execute("SELECT current_database(), current_user").fetchone() == expected
        own.execute("LISTEN clientdesk_probe")
