"""The follow-up settings page for humans: countries by name (one each, sorted), a time-zone
picker, and the stored values selected."""

import re

import pytest

from clientdesk.followup.policy import holiday_countries
from clientdesk.followup.selectors import policy_get

pytestmark = pytest.mark.django_db


def options(html: str, select_id: str) -> list[tuple[str, str]]:
    select = re.search(rf'<select id="{select_id}".*?</select>', html, re.S).group(0)
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)


def test_one_named_entry_per_country_sorted_by_name(make_user, client):
    policy = policy_get()
    policy.holidays, policy.timezone = "DE", "Europe/Berlin"
    policy.save()
    client.force_login(make_user("Administrator"))
    html = client.get("/settings/follow-up/").content.decode()
    countries = options(html, "policy-holidays")
    assert countries[0] == ("", "No holidays")
    codes = [code for code, _ in countries[1:]]
    assert len(codes) == len(set(codes)) == len(holiday_countries()) >= 200
    assert all(re.fullmatch("[A-Z]{2}", code) for code in codes)  # no alpha-3 twins
    assert ("DE", "Germany (DE)") in countries
    assert ("US", "United States of America (US)") in countries
    assert ("AX", "Åland Islands (AX)") in countries
    names = [name for _, name in countries[1:]]
    assert names.index("Åland Islands (AX)") < names.index("Albania (AL)")
    assert names.index("Germany (DE)") < names.index("Ghana (GH)")
    assert '<option value="DE" selected>' in html


def test_the_time_zone_is_picked_from_the_zone_database(make_user, client):
    policy = policy_get()
    policy.timezone = "America/Argentina/Buenos_Aires"
    policy.save()
    client.force_login(make_user("Administrator"))
    html = client.get("/settings/follow-up/").content.decode()
    zones = dict(options(html, "policy-timezone"))
    assert "Europe/Berlin" in zones and "UTC" in zones and "Asia/Kolkata" in zones
    assert "localtime" not in zones and "Factory" not in zones
    assert '<optgroup label="America">' in html
    assert '<option value="America/Argentina/Buenos_Aires" selected>' in html
    assert "not a known time zone" not in html


def test_a_stored_zone_that_is_not_one_is_shown_as_such(make_user, client):
    policy = policy_get()
    policy.timezone = "Mars/Olympus"
    policy.save()
    client.force_login(make_user("Administrator"))
    page = client.get("/settings/follow-up/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<option value="Mars/Olympus" selected>Mars/Olympus — not a known time zone' in html
