"""One reading of `Authorization: Bearer <token>` for the staff API, the staff event stream and
the portal API (core/bearer.py), checked on its own and through the two token APIs."""

from collections.abc import Callable

import pytest
from django.test import Client as DjangoClient
from hypothesis import given
from hypothesis import strategies as st

from clientdesk.accounts.models import User
from clientdesk.accounts.services import api_token_create
from clientdesk.clients.models import Client
from clientdesk.core.bearer import bearer_token
from clientdesk.portal.services import portal_session_issue


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER    abc   ", "abc"),
        ("Bearer cdp_a:b:c", "cdp_a:b:c"),
        ("Bearer", ""),
        ("Bearer ", ""),
        ("Bearer     ", ""),
        ("Bearer a b", ""),
        ("Bearer abc def ghi", ""),
        ("", None),
        (" Bearer abc", None),
        ("Bearerabc", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Token abc", None),
        ("Bearer\tabc", None),
        ("Beärer abc", None),
    ],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token


@given(st.text())
def test_any_header_gives_a_token_without_spaces_an_empty_string_or_none(header: str) -> None:
    token = bearer_token(header)
    if header.partition(" ")[0].lower() != "bearer":
        assert token is None
    else:
        assert token is not None
        assert " " not in token
        assert token == token.strip()
        assert not token or token in header


@given(
    scheme=st.sampled_from(["Bearer", "bearer", "BEARER", "bEaReR"]),
    token=st.text(min_size=1).filter(lambda t: t.strip() and " " not in t.strip()),
    before=st.text(alphabet=" ", max_size=5),
    after=st.text(alphabet=" ", max_size=5),
)
def test_a_token_comes_back_whatever_the_scheme_case_and_spaces(
    scheme: str, token: str, before: str, after: str
) -> None:
    assert bearer_token(f"{scheme} {before}{token}{after}") == token.strip()


MALFORMED = ["Bearer", "Bearer ", "Bearer a b", "bearer \x00 x"]
OTHER_SCHEMES = ["Basic dXNlcjpwYXNz", "Token abc", "Bearerabc", "", "\x00"]


@pytest.fixture
def staff_token(make_user: Callable[..., User]) -> str:
    return api_token_create(user=make_user("Agent"))[1]


@pytest.mark.django_db
def test_the_staff_api_reads_the_header_as_the_parser_does(staff_token: str) -> None:
    api = DjangoClient()
    for header in (f"Bearer {staff_token}", f"bearer   {staff_token} ", f"BEARER {staff_token}"):
        assert api.get("/api/v1/clients", HTTP_AUTHORIZATION=header).status_code == 200, header
    for header in MALFORMED:
        refused = api.get("/api/v1/clients", HTTP_AUTHORIZATION=header)
        assert refused.status_code == 401, header
        assert "Malformed Authorization header" in refused.json()["detail"], header
    for header in OTHER_SCHEMES:
        # Not ours to read: no identity, so the API asks for one (the session may not either).
        refused = api.get("/api/v1/clients", HTTP_AUTHORIZATION=header)
        assert refused.status_code in (401, 403), header
        assert refused["Content-Type"] == "application/problem+json", header


@pytest.mark.django_db
def test_the_portal_api_reads_the_header_as_the_parser_does(
    make_user: Callable[..., User], client_obj: Client, staff_token: str
) -> None:
    issued = portal_session_issue(
        issuer=make_user("Integration"), token=None, client_id=client_obj.id
    )
    token = issued.representation()["token"]
    portal = DjangoClient()
    for header in (f"Bearer {token}", f"bearer   {token} "):
        answer = portal.get("/portal/api/v1/messages", HTTP_AUTHORIZATION=header)
        assert answer.status_code == 200, header
    for header in [*MALFORMED, *OTHER_SCHEMES[:3], f"Bearer {staff_token}"]:
        refused = portal.get("/portal/api/v1/messages", HTTP_AUTHORIZATION=header)
        assert refused.status_code == 401, header
        assert refused["Content-Type"] == "application/problem+json", header
