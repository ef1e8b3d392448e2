"""The Content-Security-Policy forbids inline script, inline style and eval, and the pages that
need JavaScript still work under it in a real browser: htmx, the admin, the API reference.
(The `page` fixture fails any browser test on a CSP refusal.)"""

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityType
from clientdesk.audit.services import activity_record
from clientdesk.clients.models import Client
from tests.e2e.helpers import open_send_panel

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_htmx_panel_and_older_activity_work_under_the_policy(
    page: Page,
    login: Callable[[User], Page],
    make_staff: Callable[..., User],
    make_client: Callable[..., Client],
) -> None:
    from django.utils import timezone

    client = make_client(first_name="Zoë", last_name="Müller")
    for n in range(25):  # more than one page of the Activity log
        activity_record(
            client=client,
            type=ActivityType.MESSAGE_SENT,
            actor=None,
            created_at=timezone.now(),
            subject_id=None,
            data={"body": f"Earlier note {n}"},
        )
    login(make_staff("Agent"))
    dialog = open_send_panel(page, client)
    expect(dialog.get_by_placeholder("Type your message...")).to_be_visible()

    page.goto(f"/clients/{client.id}/activity/")
    expect(page.get_by_text("Earlier note 24")).to_be_visible()
    expect(page.get_by_text("Earlier note 0")).to_have_count(0)
    page.get_by_role("link", name="Show older").click()
    expect(page.get_by_text("Earlier note 0")).to_be_visible()
    expect(page.get_by_role("link", name="Show older")).to_have_count(0)


def test_the_admin_works_under_the_policy(
    page: Page, make_staff: Callable[..., User], make_client: Callable[..., Client]
) -> None:
    from clientdesk.accounts.services import api_token_create
    from tests.e2e.conftest import PASSWORD

    admin = make_staff("Administrator", is_staff=True, is_superuser=True)
    make_client(first_name="Ada", last_name="Lovelace")
    api_token_create(user=admin, name="Nightly sync")
    page.goto("/admin/")
    page.get_by_label("Username").fill(admin.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto("/admin/clients/client/")
    expect(page.get_by_role("link", name="Ada Lovelace")).to_be_visible()
    # The admin's own script runs: "select all" ticks every row's box (API tokens keep the
    # recorded "Revoke" action; clients have no bulk action any more).
    page.goto("/admin/accounts/apitoken/")
    expect(page.get_by_text("Nightly sync")).to_be_visible()
    page.locator("#action-toggle").check()
    expect(page.locator("input.action-select").first).to_be_checked()


def test_the_api_reference_renders_under_the_policy(page: Page) -> None:
    response = page.goto("/api/docs/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert script_src.strip() == "script-src 'self'"
    expect(page.get_by_text("Clientdesk API").first).to_be_visible()
    expect(page.locator(".opblock").first).to_be_visible()
