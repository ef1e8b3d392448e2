import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client):
    def login(user):
        client.force_login(user)
        return client

    return login


def test_clients_page_lists_clients_with_search_box_and_actions(logged_in, agent, make_client):
    make_client(first_name="Zoë", last_name="Müller")
    page = logged_in(agent).get("/clients/")
    html = page.content.decode()
    assert page.status_code == 200
    assert '<label for="client-search">Search clients</label>' in html
    assert "Zoë Müller" in html
    assert 'aria-label="Actions"' in html
    assert ">View details</a>" in html
    assert ">Send a message</a>" in html


def test_plain_get_search_works_without_javascript(logged_in, agent, make_client):
    make_client(first_name="Zoë", last_name="Müller")
    make_client(first_name="Ana", last_name="García")
    html = logged_in(agent).get("/clients/", {"q": "garcia"}).content.decode()
    assert "Ana García" in html
    assert "Zoë Müller" not in html


def test_htmx_search_returns_only_the_table(logged_in, agent, make_client):
    make_client(first_name="Ana", last_name="García")
    response = logged_in(agent).get(
        "/clients/", {"q": "ana"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="client-table"
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="client-table"')
    assert "<html" not in html
    assert "Ana García" in html


def test_no_match_says_so(logged_in, agent, make_client):
    make_client()
    html = logged_in(agent).get("/clients/", {"q": "<b>nobody</b>"}).content.decode()
    assert "No clients match “&lt;b&gt;nobody&lt;/b&gt;”." in html


def test_pages_of_clients(logged_in, agent, make_client):
    for n in range(27):
        make_client(first_name="Freja", last_name=f"Hansen{n:02d}")
    first = logged_in(agent).get("/clients/").content.decode()
    assert 'rel="next"' in first
    second = logged_in(agent).get("/clients/", {"page": "2"}).content.decode()
    assert "Hansen26" in second
    assert 'rel="next"' not in second
    for nonsense in ("banana", "0", "-1", "١٢", "9" * 5000):
        refused = logged_in(agent).get("/clients/", {"page": nonsense})
        assert refused.status_code == 422
        assert "page" in refused.content.decode()
        assert "must be a whole number from 1 to 100000" in refused.content.decode()


def test_details_drawer_shows_client_and_activity_section(logged_in, agent, client_obj):
    url = f"/clients/{client_obj.id}/"
    drawer = logged_in(agent).get(url, HTTP_HX_REQUEST="true").content.decode()
    assert drawer.lstrip().startswith('<dialog class="drawer"')
    assert "Zoë Müller" in drawer
    assert "Activity log</h3>" in drawer
    assert f"/clients/{client_obj.id}/activity/" in drawer
    page = logged_in(agent).get(url).content.decode()
    assert "<html" in page
    assert "Activity log</h3>" in page


def test_unknown_client_details_is_404(logged_in, agent):
    response = logged_in(agent).get("/clients/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404


def test_anonymous_users_are_sent_to_login(client):
    response = client.get("/clients/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_client_markup_is_shown_as_text(logged_in, agent, make_client):
    make_client(first_name="<img src=x onerror=alert(1)>", last_name="<script>x</script>")
    html = logged_in(agent).get("/clients/").content.decode()
    assert "<img src=x" not in html
    assert "<script>x</script>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
