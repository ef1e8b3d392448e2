import pytest
from django.db import connection

from clientdesk.clients.models import Client
from clientdesk.clients.search_index import SQLITE_FTS_TABLE, SQLITE_TRIGGERS
from clientdesk.clients.selectors import client_search

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_client):
    return {
        "zoe": make_client(
            first_name="Zoë",
            last_name="Müller",
            email="zoe.m@example.de",
            phone="+49 151 2345 6789",
            external_id="DE-778",
        ),
        "lukasz": make_client(
            first_name="Łukasz",
            last_name="Wiśniewski",
            email="lw@przyklad.pl",
            phone="+48 500 100 200",
            external_id="PL-1",
        ),
        "ana": make_client(
            first_name="Ana",
            last_name="García Núñez",
            email="ana@correo.es",
            phone="",
            external_id="ES-42",
        ),
        "jurgen": make_client(
            first_name="Jürgen", last_name="Groß", email="", phone="030 1234", external_id="DE-900"
        ),
    }


def _found(query: str) -> set[str]:
    return {c.external_id for c in client_search(query=query)}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("zoe", {"DE-778"}),
        ("ZOË", {"DE-778"}),
        ("muller", {"DE-778"}),
        ("Müller", {"DE-778"}),
        ("lukasz", {"PL-1"}),
        ("wisniewski", {"PL-1"}),
        ("nunez", {"ES-42"}),
        ("GARCIA", {"ES-42"}),
        ("gross", {"DE-900"}),  # ß folds to ss
        ("correo.es", {"ES-42"}),
        ("zoe.m@", {"DE-778"}),
        ("2345", {"DE-778"}),  # phone digits, spaces ignored by the digits copy
        ("1512345", {"DE-778"}),
        ("pl-1", {"PL-1"}),
        ("de-", {"DE-778", "DE-900"}),
        ("ana garcia", {"ES-42"}),
        ("garcia zoe", set()),
        ("nobody-at-all", set()),
        ("an", {"ES-42"}),  # shorter than a trigram still works
        ("", {"DE-778", "PL-1", "ES-42", "DE-900"}),
    ],
)
def test_search_matches_name_email_phone_external_id_ignoring_case_and_accents(
    people, query, expected
):
    assert _found(query) == expected


def test_search_is_ordered_by_last_then_first_name(people):
    names = [c.last_name for c in client_search(query="")]
    assert names == ["García Núñez", "Groß", "Müller", "Wiśniewski"]


def test_changed_name_is_found_by_the_new_name_only(people):
    client = people["ana"]
    client.last_name = "Ortega"
    client.refresh_derived()
    client.save()
    assert _found("ortega") == {"ES-42"}
    assert _found("garcia") == set()


def test_deleted_client_leaves_the_index(people):
    Client.objects.filter(external_id="PL-1").delete()
    assert _found("lukasz") == set()


def test_hostile_search_text_is_only_text(people):
    for query in ['"', "' OR 1=1 --", "NEAR(a b)", "*", "a AND b", "%", "_", "\\"]:
        assert isinstance(_found(query), set)


def test_the_search_index_exists_after_all_migrations(db):
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger')")
            names = {row[0] for row in cursor.fetchall()}
            assert SQLITE_FTS_TABLE in names
            assert set(SQLITE_TRIGGERS) <= names
        else:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'clients_client_search_trgm'"
            )
            (definition,) = cursor.fetchone()
            assert "gin_trgm_ops" in definition
