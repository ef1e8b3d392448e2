"""Search walks the page order from where a match can first be (PostgreSQL's
clients_search_head, kept by triggers): the pages must stay exactly what a plain filter gives,
whatever was created, renamed and deleted, and saving clients must never wait on the table."""

import os
import threading
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clientdesk.clients import search_index
from clientdesk.clients.models import Client
from clientdesk.clients.selectors import client_search
from clientdesk.clients.services import client_create, client_update
from clientdesk.core.text import fold

postgresql_only = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="the search-head table is PostgreSQL's (SQLite answers from its FTS table)",
)


def _expected(query: str) -> list[uuid.UUID]:
    terms = fold(query).split()[:8]
    rows = Client.objects.order_by("sort_name", "id")
    for term in terms:
        rows = rows.filter(search_text__contains=term[:64])
    return list(rows.values_list("pk", flat=True))


def _all_pages(query: str, **steps: int) -> list[uuid.UUID]:
    got, page = [], 1
    while True:
        result = client_search(query=query, page=page, size=3, **steps)
        got.extend(c.pk for c in result.items)
        if not result.has_next:
            return got
        page += 1


def _bounds_hold() -> list[tuple[str, str]]:
    """Every (client sort_name, trigram) whose trigram has no bound at or before the client."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.sort_name, g FROM clients_client c, "  # noqa: S608 - constants
            f"unnest({search_index.PG_GRAMS}(c.search_text)) AS g "
            f"WHERE NOT EXISTS (SELECT 1 FROM {search_index.PG_HEADS} h "
            "WHERE h.gram = g AND h.sort_name <= c.sort_name)"
        )
        return cursor.fetchall()


SURNAMES = ["Aalto", "Abbot", "Ng", "Smith", "Smithers", "Smit", "Zweig", "Øster", "Жуков"]
FIRSTS = ["Ann", "Zoë", "Ida", "Jürgen"]
operation = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(FIRSTS), st.sampled_from(SURNAMES)),
    st.tuples(st.just("rename"), st.integers(0, 50), st.sampled_from(SURNAMES)),
    st.tuples(st.just("delete"), st.integers(0, 50), st.just("")),
)
query = st.one_of(
    st.sampled_from(["smith", "smit", "ann smith", "zweig zoe", "mith", "aal", "жук", "oster"]),
    st.text(alphabet="smithaznoæø%_ ", min_size=1, max_size=7),
)


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    operations=st.lists(operation, min_size=1, max_size=30),
    queries=st.lists(query, min_size=1, max_size=4),
    walk=st.sampled_from([0, 2, 4, 2_000]),
    probe=st.sampled_from([0, 2, 1_000]),
    far_walk=st.sampled_from([0, 5, 50_000]),
)
def test_pages_are_a_plain_filters_after_any_creates_renames_and_deletes(
    operations, queries, walk, probe, far_walk
):
    with transaction.atomic():
        made: list[Client] = []
        for n, (kind, arg, surname) in enumerate(operations):
            if kind == "create":
                made.append(
                    client_create(
                        external_id=f"H-{uuid.uuid4().hex[:8]}",
                        first_name=str(arg),
                        last_name=surname,
                        email=f"{''.join(c for c in fold(surname) if c.isascii())}{n}@ex.com",
                    )
                )
            elif made:
                client = made[int(arg) % len(made)]
                if kind == "rename":
                    client_update(actor=None, client_id=client.id, changes={"last_name": surname})
                else:
                    Client.objects.filter(pk=client.pk).delete()
                    made.remove(client)
        for text in queries:
            steps = {"walk": walk, "probe": probe, "far_walk": far_walk}
            assert _all_pages(text, **steps) == _expected(text), (text, steps)
        if connection.vendor == "postgresql":
            assert _bounds_hold() == []
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_common_surname_late_in_page_order_is_read_where_its_clients_begin(make_client):
    # Twelve clients sort before the first Smith; a walk of six rows from the first client
    # sees none of them, so the page would come from the index's full list of matches.
    for n in range(12):
        make_client(first_name="Ann", last_name=f"Abbot{n}", email=f"a{n}@example.com")
    smiths = [
        make_client(first_name=first, last_name="Smith", email=f"{fold(first)}@example.com")
        for first in ["Ida", "Ann", "Zoë"]
    ]
    with CaptureQueriesContext(connection) as captured:
        page = client_search(query="smith", size=2, walk=6, probe=0, far_walk=0)
    assert [c.pk for c in page.items] == [smiths[1].pk, smiths[0].pk]
    assert page.has_next
    reads = [q["sql"] for q in captured.captured_queries if "clients_client" in q["sql"]]
    if connection.vendor == "postgresql":
        # Answered by the first walk, started at the first Smith: no read of all matches.
        assert "sort_name >=" in reads[-1]
        assert not any("WITH m AS" in sql for sql in reads)
    assert client_search(query="smith", page=2, size=2, walk=6).items == [smiths[2]]


@postgresql_only
@pytest.mark.django_db
def test_the_bound_table_is_exact_after_install_and_only_lowered_by_saves(make_client):
    zed = make_client(first_name="Ann", last_name="Zweig", email="", phone="", external_id="Z-1")

    def bound(gram: str) -> str | None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT min(sort_name) FROM {search_index.PG_HEADS} WHERE gram = %s",  # noqa: S608
                [gram],
            )
            return cursor.fetchone()[0]

    assert bound("wei") == "zweig ann"
    abe = make_client(first_name="Ann", last_name="Abeweiß", email="", phone="", external_id="Z-2")
    assert bound("wei") == "abeweiss ann"
    # A rename never raises a bound (it would be a scan of every client): still right, since
    # nothing sorts before it, and install makes the table exact again.
    client_update(actor=None, client_id=abe.id, changes={"last_name": "Young"})
    assert bound("wei") == "abeweiss ann"
    assert [c.pk for c in client_search(query="weig", walk=2).items] == [zed.pk]
    with connection.schema_editor() as editor:
        search_index.install_heads(None, editor)
    assert bound("wei") == "zweig ann"
    assert bound("you") == "young ann"
    assert _bounds_hold() == []


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_saving_clients_never_waits_for_another_transactions_bounds():
    """Two transactions lowering the same bounds: the second goes on while the first, which
    holds the old rows it replaces, is still open; both commit and every bound holds. (Rows
    saved as an import writes them, without the ledger record client_create adds, whose own
    lock would make the second wait whatever this table does.)"""

    def client_create(*, external_id: str, first_name: str, last_name: str) -> None:
        client = Client(external_id=external_id, first_name=first_name, last_name=last_name)
        client.refresh_derived()
        client.save(force_insert=True)

    client_create(external_id="W-0", first_name="Ida", last_name="Mmmwaiting")
    first_saved, second_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                client_create(external_id="W-1", first_name="Ida", last_name="Kkkwaiting")
                first_saved.set()
                # Held open until the second transaction has saved (or given up).
                second_done.wait(30)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def second() -> None:
        try:
            assert first_saved.wait(30)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '10s'")
                client_create(external_id="W-2", first_name="Ida", last_name="Jjjwaiting")
        except BaseException as error:
            errors.append(error)
        finally:
            second_done.set()
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert _bounds_hold() == []
    assert [c.external_id for c in client_search(query="waiting", walk=2).items] == [
        "W-2",
        "W-1",
        "W-0",
    ]
