"""`manage.py broadcast`: the same checks and services as the API, clear errors for bad flags."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from clientdesk.messaging.models import Message
from clientdesk.messaging.services.templates import template_create
from clientdesk.outreach.models import Broadcast
from tests.outreach.conftest import run_batches

pytestmark = pytest.mark.django_db


def broadcast(*args: str) -> str:
    out = io.StringIO()
    call_command("broadcast", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_a_dry_run_and_a_broadcast_by_external_ids(manager, make_client, tmp_path):
    first = make_client(external_id="A-1", first_name="Ana")
    second = make_client(external_id="A-2", first_name="Bo")
    ids = tmp_path / "ids.txt"
    # What spreadsheets write: a byte-order mark, CRLF, blank lines.
    ids.write_bytes(b"\xef\xbb\xbfA-1\r\n\r\nA-2\r\n")
    common = ["--external-ids", str(ids), "--category", "service", "--as", manager.username]
    preview = json.loads(broadcast(*common, "--body", "Hi {{ firstName }}", "--dry-run"))
    assert preview["recipients"] == 2
    assert sorted(p["body"] for p in preview["preview"]) == ["Hi Ana", "Hi Bo"]
    assert Broadcast.objects.count() == 0

    template_create(author=manager, name="Greeting", body="Hello {{ firstName }}", language="en")
    created = json.loads(broadcast(*common, "--template", "greeting"))
    assert (created["recipients"], created["status"]) == (2, "scheduled")
    run_batches()
    bodies = {m.client_id: m.body for m in Message.objects.filter(broadcast_id=created["id"])}
    assert bodies == {first.id: "Hello Ana", second.id: "Hello Bo"}


def test_the_same_idempotency_key_is_the_same_broadcast(manager, make_client):
    make_client(first_name="Cleo", last_name="Searchable")
    args = ["--search", "searchable", "--body", "Hi", "--category", "outreach"]
    args += ["--as", manager.username, "--idempotency-key", "run-1"]
    assert json.loads(broadcast(*args))["id"] == json.loads(broadcast(*args))["id"]
    assert Broadcast.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--search", "x", "--external-ids", "f", "--body", "b"], "not allowed with"),
        (["--body", "b"], "one of the arguments --search --external-ids is required"),
        (["--search", "x"], "one of the arguments --body --template is required"),
        (["--search", "x", "--body", "b", "--category", "promo"], "invalid choice"),
        (["--search", "x", "--body", "b", "--send-at", "a", "--send-at-local", "b"], "not allowed"),
        (["--search", "x", "--template", "Nope"], "No message template named 'Nope'"),
        (["--search", "x", "--body", "b", "--send-at", "2001-01-01T00:00Z"], "send_at"),
        (["--search", "x", "--body", "b", "--send-at-local", "tomorrow"], "send_at_local"),
        (["--search", "", "--body", "b"], "audience.search"),
        (["--search", "nobody-matches-this", "--body", "b"], "No client matches"),
        (["--search", "x", "--body", "{{ firstName"], "body"),
        (["--external-ids", "/nonexistent/ids.txt", "--body", "b"], "Cannot read"),
    ],
)
def test_bad_flags_are_a_clear_error(manager, args, says):
    full = [*args]
    if "--category" not in full:
        full += ["--category", "service"]
    with pytest.raises(CommandError, match=says):
        broadcast(*full, "--as", manager.username)
    assert Broadcast.objects.count() == 0


def test_only_a_user_who_may_broadcast(agent, manager):
    with pytest.raises(CommandError, match="Send a broadcast"):
        broadcast("--search", "x", "--body", "b", "--category", "service", "--as", agent.username)
    with pytest.raises(CommandError, match="No active staff user"):
        broadcast("--search", "x", "--body", "b", "--category", "service", "--as", "ghost")
