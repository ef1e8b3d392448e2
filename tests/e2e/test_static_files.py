"""The live server really serves the page's assets, and the page really runs them."""

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from clientdesk.accounts.models import User

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ASSETS = ("clientdesk/htmx-2.0.11.min.js", "clientdesk/app.js", "clientdesk/app.css")


def test_htmx_app_js_and_app_css_load(
    page: Page, login: Callable[[User], Page], make_staff: Callable[..., User]
) -> None:
    statuses: dict[str, int] = {}
    page.on(
        "response",
        lambda r: (
            statuses.__setitem__(r.url.split("/static/", 1)[1], r.status)
            if "/static/" in r.url
            else None
        ),
    )
    login(make_staff("Viewer"))
    assert {name: statuses.get(name) for name in ASSETS} == dict.fromkeys(ASSETS, 200)
    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("htmx.version") == "2.0.11"
    # app.css is applied (app.js is exercised by every menu and drawer test).
    expect(page.get_by_role("navigation", name="Main")).to_have_css(
        "background-color", "rgb(23, 32, 46)"
    )
