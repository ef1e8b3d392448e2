"""The client's notification settings on the portal API: outreach off and on, by the client's own
session only, each change in the ledger with the client as the actor."""

import pytest

from clientdesk.audit.models import ActorType, AuditEntry
from clientdesk.clients.services import client_update

pytestmark = pytest.mark.django_db
URL = "/portal/api/v1/preferences"


def _entries(client):
    return list(
        AuditEntry.objects.filter(action="client.consent_changed", object_id=str(client.pk))
    )


def test_the_client_turns_outreach_off_and_on(portal_for, make_client):
    client = make_client()
    api = portal_for(client)
    assert api.get(URL).json() == {"outreach_opt_out": False, "outreach_opt_out_at": None}

    off = api.put(URL, {"outreach_opt_out": True}, format="json")
    assert off.status_code == 200
    assert off.json()["outreach_opt_out"] is True
    assert off.json()["outreach_opt_out_at"].endswith("Z")
    assert api.get(URL).json() == off.json()
    assert api.put(URL, {"outreach_opt_out": True}, format="json").json() == off.json()

    on = api.put(URL, {"outreach_opt_out": False}, format="json")
    assert on.json() == {"outreach_opt_out": False, "outreach_opt_out_at": None}
    entries = _entries(client)
    assert [e.data["after"]["outreach_opt_out"] for e in entries] == [True, False]
    assert {(e.actor_type, e.actor_id, e.data["via"]) for e in entries} == {
        (ActorType.CLIENT, str(client.pk), "cabinet")
    }


def test_a_session_changes_only_its_own_client(portal_for, make_client):
    mine, theirs = make_client(), make_client()
    api = portal_for(mine)
    # No id travels in the request; one in the body is refused, not obeyed.
    refused = api.put(URL, {"outreach_opt_out": True, "client_id": str(theirs.pk)}, format="json")
    assert refused.status_code == 422
    assert "client_id" in refused.json()["errors"]
    assert api.put(URL, {"outreach_opt_out": True}, format="json").status_code == 200
    assert portal_for(theirs).get(URL).json()["outreach_opt_out"] is False
    by_query = api.put(f"{URL}?client_id={theirs.pk}", {"outreach_opt_out": True}, format="json")
    assert by_query.status_code == 422
    theirs.refresh_from_db()
    assert theirs.outreach_opt_out is False and not _entries(theirs)


@pytest.mark.parametrize(
    "body",
    [
        {"outreach_opt_out": "yes"},
        {"outreach_opt_out": "true"},
        {"outreach_opt_out": 1},
        {"outreach_opt_out": None},
        {"outreach_opt_out": {"nested": [True]}},
        {},
        [True],
        "true",
        {"outreach_opt_out": True, "x" * 10_000: 1},
    ],
)
def test_anything_but_a_json_boolean_is_refused_and_changes_nothing(portal_for, make_client, body):
    client = make_client()
    response = portal_for(client).put(URL, body, format="json")
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/problem+json"
    client.refresh_from_db()
    assert client.outreach_opt_out is False and not _entries(client)


def test_no_session_a_staff_token_or_an_ended_session_get_nothing(
    client, portal_for, make_client, api_for, agent
):
    target = make_client()
    assert client.get(URL).status_code == 401
    assert (
        client.put(URL, {"outreach_opt_out": True}, content_type="application/json").status_code
        == 401
    )
    staff = api_for(agent).put(URL, {"outreach_opt_out": True}, format="json")
    assert staff.status_code == 401
    api = portal_for(target)
    client_update(actor=agent, client_id=target.id, changes={"is_active": False})
    assert api.put(URL, {"outreach_opt_out": True}, format="json").status_code == 401
    target.refresh_from_db()
    assert target.outreach_opt_out is False and not _entries(target)


def test_other_methods_are_refused(portal_for, make_client):
    api = portal_for(make_client())
    for method in ("post", "patch", "delete"):
        assert (
            getattr(api, method)(URL, {"outreach_opt_out": True}, format="json").status_code == 405
        )
