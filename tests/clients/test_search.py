import pytest
from django.db import connection

from clientdesk.clients.models import Client
from clientdesk.clients.search_index import SQLITE_FTS_TABLE, SQLITE_TRIGGERS
from clientdesk.clients.selectors import client_search
from clientdesk.clients.services import client_update

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
    return {c.external_id for c in client_search(query=query, size=100).items}


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
    names = [c.last_name for c in client_search(query="").items]
    assert names == ["García Núñez", "Groß", "Müller", "Wiśniewski"]


def test_changed_name_is_found_by_the_new_name_only(people):
    client_update(actor=None, client_id=people["ana"].id, changes={"last_name": "Ortega"})
    assert _found("ortega") == {"ES-42"}
    assert _found("garcia") == set()


def test_deleted_client_leaves_the_index(people):
    Client.objects.filter(external_id="PL-1").delete()
    assert _found("lukasz") == set()


def test_hostile_search_text_is_only_text(people):
    # Quotes, FTS operators and LIKE wildcards are literal text that no client contains.
    for query in ['"', "' OR 1=1 --", "NEAR(a b)", "*", "a AND b", "%", "_", "\\", "zoe%"]:
        assert _found(query) == set(), query
    assert _found("zoe") == {"DE-778"}


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


@pytest.mark.parametrize(
    ("walk", "probe", "far_walk"),
    [
        (3, 1_000, 50_000),  # the index's few matches
        (40, 1_000, 50_000),
        (2_000, 1_000, 50_000),  # the first walk
        (0, 2, 50_000),  # the far walk
        (0, 2, 5),  # all the index's matches
        (3, 2, 6),  # a few matches near the start: the far walk first, then the index
        (0, 0, 0),
    ],
)
def test_every_search_step_returns_the_same_pages(make_client, walk, probe, far_walk):
    from clientdesk.core.text import fold

    names = ["Nowak", "Nowakowski", "Kowalczyk", "Wójcik", "Müller", "Smith", "O'Brien"]
    clients = [
        make_client(first_name=first, last_name=last, email=f"c{i}@example.com")
        for i, (first, last) in enumerate(
            (f, names[(i * 7) % len(names)])
            for i, f in enumerate(["Ana", "Zoë", "Jürgen", "Łukasz", "Ida", "Mia"] * 6)
        )
    ]
    queries = ["nowak", "wojcik ana", "ana", "zo", "example.com", "mull zoe", "x_y", "%", "o z"]
    for query in [*queries, "@ex", "c1", "...", "c1 ak", "ZZZ", "ø"]:
        terms = fold(query).split()
        expected = sorted(
            (c for c in clients if all(t in c.search_text for t in terms)),
            key=lambda c: (c.sort_name, str(c.id)),
        )
        got, page = [], 1
        while True:
            result = client_search(
                query=query, page=page, size=4, walk=walk, probe=probe, far_walk=far_walk
            )
            got.extend(result.items)
            if not result.has_next:
                break
            page += 1
        assert [c.id for c in got] == [c.id for c in expected], (query, walk, probe, far_walk)


def test_editing_a_client_keeps_search_in_step(make_client):
    client = make_client(first_name="Søren", last_name="Kierkegaard")
    for n in range(3):
        client_update(actor=None, client_id=client.id, changes={"last_name": f"Renamed{n}"})
    assert _found_ids("kierkegaard") == set()
    assert _found_ids("renamed2") == {client.id}
    assert _found_ids("renamed1") == set()


def _found_ids(query):
    return {c.id for c in client_search(query=query, size=100).items}


@pytest.mark.parametrize(("probe", "far_walk"), [(1_000, 50_000), (2, 50_000), (0, 0)])
def test_every_short_word_finds_what_a_plain_filter_finds(make_client, probe, far_walk):
    """Words of one or two characters have no trigram: they go through the pair index
    (PostgreSQL) or the trigram vocabulary (SQLite). Every such word over an alphabet that
    covers the start, middle and end of the text, digits, punctuation and other scripts must
    find exactly the clients a plain substring filter finds, in page order."""
    from clientdesk.core.text import fold

    people = [
        ("Zoë", "Müller", "zq@ex.de", "+49 151 2345 6789", "DE-7Q"),
        ("Ана", "Жукова", "", "", "RU-9"),
        ("Ελένη", "Παππά", "e@x.gr", "+30 210 123 4567", "GR-1"),
        ("Qx", "O'Brien", "o.b@x.ie", "", "IE-X"),
        ("Ida", "Åberg_%", "ida@x.se", "+46 8 123 45 67", "SE-5"),
    ]
    clients = [
        make_client(first_name=f, last_name=la, email=e, phone=p, external_id=x)
        for f, la, e, p, x in people
    ]
    alphabet = [*sorted(set("".join(c.search_text for c in clients)) - {" "}), "ы", "%", "_"]
    words = alphabet + [a + b for a in "zqxeж-7.%" for b in alphabet]
    for word in words:
        expected = sorted(
            (c for c in clients if fold(word) in c.search_text),
            key=lambda c: (c.sort_name, str(c.id)),
        )
        got = client_search(query=word, size=10, walk=0, probe=probe, far_walk=far_walk).items
        assert [c.id for c in got] == [c.id for c in expected], word


def test_a_very_long_search_text_is_cut_to_what_an_index_entry_holds(make_client):
    from clientdesk.clients.search_index import SEARCH_TEXT_BYTES

    # NFKD spreads each of these into many characters (U+FDFA: 18).
    client = make_client(first_name="\ufdfa" * 100, last_name="\u3300" * 100)
    assert len(client.search_text.encode()) <= SEARCH_TEXT_BYTES
    client.refresh_from_db()
    assert client_search(query=client.search_text.split()[0][:20], size=5).items == [client]


def test_hostile_queries_get_an_answer(people):
    long_word = "ä" * 500
    for query in [long_word, "<b>zoe</b>", "%_%_%", "\u202e\u200b", "...", "-- --- ----"]:
        assert _found(query) == set(), query
    # Only the first words count.
    assert _found("zoe " * 50) == {"DE-778"}


def test_a_term_looked_up_by_its_digits_still_matches_whole(make_client):
    # PostgreSQL's index looks up "0723081" alone; the whole term must still match.
    wanted = make_client(first_name="Ann", last_name="Lee", external_id="CRM-0723081")
    make_client(first_name="Bob", last_name="Lee", external_id="XRM-0723081")
    make_client(first_name="Cy", last_name="Lee", email="client57376@gmx.de")
    assert _found_ids("crm-0723081") == {wanted.id}
    assert _found_ids("client57376@gmail.com") == set()
    assert _found_ids("crm-0723081 ann") == {wanted.id}
    for probe in (0, 1_000):
        got = client_search(query="crm-07230", walk=0, probe=probe, far_walk=0).items
        assert [c.id for c in got] == [wanted.id]
