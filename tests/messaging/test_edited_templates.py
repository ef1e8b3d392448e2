"""A template's text edited before sending (docs/API.md, "A template's text, edited"): the same
text is an ordinary template send, a different one is checked like typed text and recorded as
edited everywhere the message is told; a client's values stay text on the way back."""

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clientdesk.accounts.models import User
from clientdesk.audit.models import ActivityEvent, AuditEntry
from clientdesk.clients.models import Client
from clientdesk.core.errors import ValidationFailed
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Message
from clientdesk.messaging.rendering import literal_source, render_message
from clientdesk.messaging.services.sending import message_send, message_template_text
from clientdesk.messaging.services.templates import (
    SetActive,
    SetVariant,
    template_change,
    template_create,
)
from clientdesk.messaging.templatetags.messaging_labels import variant_reason

pytestmark = pytest.mark.django_db

EN = "Hi {{ firstName }}, please upload your ID."
DE = "Hallo {{ firstName }}, bitte laden Sie Ihren Ausweis hoch."


@pytest.fixture
def manager(make_user):
    return make_user("Manager")


@pytest.fixture
def template(manager):
    version = template_create(author=manager, name="ID request", body=EN, language="en")
    template_change(author=manager, template_id=version.template_id, actions=[SetVariant(DE, "de")])
    return version.template


def send(sender, client, *, template, body=None, key=None):
    return message_send(
        sender=sender,
        client_id=client.id,
        template_id=template.id,
        body=body,
        idempotency_key=key or str(uuid.uuid4()),
        meta=RequestMeta(),
    )


def test_the_templates_text_sent_unchanged_is_an_ordinary_template_send(
    agent, make_client, template
):
    client = make_client(first_name="Jürgen", language="de")
    text = message_template_text(sender=agent, client=client, template_id=template.id)
    assert text == "Hallo Jürgen, bitte laden Sie Ihren Ausweis hoch."
    result = send(agent, client, template=template, body=text)
    message = Message.objects.get(pk=result.message_id)
    assert (message.source, message.variables) == (DE, {"firstName": "Jürgen"})
    assert (message.template_version, message.template_language) == (2, "de")
    assert not message.template_edited
    assert result.response["template"]["edited"] is False
    # The template's own source as the body renders the same: not edited either.
    again = send(agent, client, template=template, body=DE)
    assert not Message.objects.get(pk=again.message_id).template_edited


def test_a_changed_text_is_recorded_as_edited_in_every_record(agent, make_client, template):
    client = make_client(first_name="Ana", language="fr")  # no French variant: the English one
    body = "Hi {{ firstName }}, please upload your ID by Friday."
    result = send(agent, client, template=template, body=body)
    message = Message.objects.get(pk=result.message_id)
    assert message.body == "Hi Ana, please upload your ID by Friday."
    assert (message.source, message.variables) == (body, {"firstName": "Ana"})
    assert (message.template_id, message.template_version, message.template_language) == (
        template.id,
        2,
        "en",
    )
    assert message.template_edited
    assert result.response["template"] == {
        "id": str(template.id),
        "version": 2,
        "language": "en",
        "edited": True,
    }
    ledger = AuditEntry.objects.get(action="message.sent", object_id=str(message.id))
    assert (ledger.data["template_id"], ledger.data["template_version"]) == (str(template.id), 2)
    assert ledger.data["template_edited"] is True
    timeline = ActivityEvent.objects.get(subject_id=message.id, type="message.sent")
    assert timeline.data["template"] == {
        "id": str(template.id),
        "name": "ID request",
        "version": 2,
        "language": "en",
        "edited": True,
    }


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("   \n ", "body", "Type a message"),
        ("x" * 5_001, "body", "limit is 5,000"),
        ("Hi {{ nickname }}", "missing_variables", "nickname"),
        ("Hi {{ firstName", None, "line 1"),
        ("{{ sender.password }}", None, "sender.password"),
        ("{% for i in (1..100000) %}{% for j in (1..100000) %}x{% endfor %}{% endfor %}", None, ""),
    ],
    ids=["blank", "too-long", "unknown-variable", "malformed", "outside-catalogue", "huge-loop"],
)
def test_an_edited_text_is_checked_like_typed_text(
    agent, client_obj, template, api_for, body, field, words
):
    answer = api_for(agent).post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"template_id": str(template.id), "body": body},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    problem = answer.json()
    assert answer.status_code == 422, problem
    assert answer["Content-Type"] == "application/problem+json"
    assert words in problem["detail"] or words in str(problem.get(field, ""))
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    "name", ["{{ email }}", "{% raw %}{{ x }}{% endraw %}", "{{{", "<b>{%- if -%}</b>"]
)
def test_a_clients_values_stay_text_when_the_text_comes_back(agent, make_client, template, name):
    client = make_client(first_name=name, email="secret@example.com", language="en")
    text = message_template_text(sender=agent, client=client, template_id=template.id)
    unchanged = Message.objects.get(pk=send(agent, client, template=template, body=text).message_id)
    assert unchanged.body == f"Hi {name}, please upload your ID."
    assert not unchanged.template_edited
    edited = Message.objects.get(
        pk=send(agent, client, template=template, body=text + " Thanks!").message_id
    )
    assert edited.body == f"Hi {name}, please upload your ID. Thanks!"
    assert edited.template_edited
    assert "secret@example.com" not in edited.body


def test_a_template_lacking_a_value_can_be_completed_by_editing(
    agent, manager, make_client, api_for
):
    version = template_create(
        author=manager, name="Code", body="Your code: {{ code }}", language="en"
    )
    client = make_client(language="en")  # no `code` attribute
    text = message_template_text(sender=agent, client=client, template_id=version.template_id)
    assert text == "Your code: {{ code }}"  # its source, to complete
    api = api_for(agent)
    url = f"/api/v1/clients/{client.id}/messages"
    alone = api.post(
        url, {"template_id": str(version.template_id)}, format="json", HTTP_IDEMPOTENCY_KEY="a"
    )
    assert (alone.status_code, alone.json()["missing_variables"]) == (422, ["code"])
    done = api.post(
        url,
        {"template_id": str(version.template_id), "body": "Your code: 4711"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="b",
    )
    assert done.status_code == 201, done.content
    assert done.json()["template"]["edited"] is True


def test_a_deactivated_template_is_refused_even_edited(agent, manager, client_obj, template):
    template_change(author=manager, template_id=template.id, actions=[SetActive(False)])
    with pytest.raises(ValidationFailed, match="deactivated"):
        send(agent, client_obj, template=template, body="Anything")
    assert Message.objects.count() == 0


def test_the_api_replays_an_edited_send_and_refuses_its_key_for_another(
    agent, client_obj, template, api_for
):
    api = api_for(agent)
    url = f"/api/v1/clients/{client_obj.id}/messages"
    edited = {"template_id": str(template.id), "body": "Hi Zoë, just the ID please."}
    first = api.post(url, edited, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    again = api.post(url, edited, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = api.post(
        url, {"template_id": str(template.id)}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert other.status_code == 422
    assert Message.objects.count() == 1


def test_the_panel_sends_the_box_with_the_template(client, agent, client_obj, template):
    client.force_login(agent)
    url = f"/clients/{client_obj.id}/messages/"
    for key, body in [("p1", "Hi Zoë, please upload your ID."), ("p2", "Hi Zoë! ID, please.")]:
        answer = client.post(
            url,
            {"template_id": str(template.id), "body": body, "idempotency_key": key},
            HTTP_HX_REQUEST="true",
        )
        assert answer.status_code == 200, answer.content
    # The box still empty when Send was pressed: the template as it is.
    client.post(
        url,
        {"template_id": str(template.id), "body": "", "idempotency_key": "p3"},
        HTTP_HX_REQUEST="true",
    )
    sent = Message.objects.order_by("created_at")
    assert [(m.body, m.template_edited) for m in sent] == [
        ("Hi Zoë, please upload your ID.", False),
        ("Hi Zoë! ID, please.", True),
        ("Hi Zoë, please upload your ID.", False),
    ]
    panel = client.get(f"/clients/{client_obj.id}/send/").content.decode()
    assert "template v2, edited" in panel


def test_the_preview_fills_the_box_and_names_the_variant(client, agent, make_client, template):
    client.force_login(agent)
    regional = make_client(first_name="Ana", language="pt-br")
    cases = {
        "de": "German (de) variant — the client&#x27;s language is de.",
        "fr": "English (en) variant, the template&#x27;s default — no French (fr) variant",
    }
    for language, says in cases.items():
        someone = make_client(first_name="Jo", language=language)
        html = client.post(
            "/templates/preview/", {"client_id": someone.id, "template_id": template.id}
        ).content.decode()
        assert says in html
        assert "data-template-text=" in html
    assert "base language" in variant_reason("pt", regional)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(
        alphabet=st.sampled_from(list("{}%-\"' raw endrawifx\n\u00e9\U0001f600")), max_size=120
    ).filter(str.strip)  # a blank message is refused, whatever its source
)
def test_literal_source_renders_to_exactly_its_text(text):
    sender = User(first_name="Alex", last_name="Agent", username="alex")
    client = Client(first_name="Zoë", last_name="Müller", language="en", attributes={})
    assert render_message(source=literal_source(text), client=client, sender=sender).body == text


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_the_export_says_which_template_sends_were_edited(agent, make_client, template, fmt):
    import csv
    import io
    import json

    from django.core.management import call_command

    client = make_client(first_name="Ana", language="en")
    plain = message_send(
        sender=agent,
        client_id=client.id,
        body="Typed by hand",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    unchanged = send(agent, client, template=template)
    edited = send(agent, client, template=template, body=EN + " Thank you.")
    out = io.StringIO()
    call_command("export_messages", "--format", fmt, "--client", str(client.id), stdout=out)
    if fmt == "csv":
        rows = {r["id"]: r["template_edited"] for r in csv.DictReader(io.StringIO(out.getvalue()))}
        expected = {"": None, "false": False, "true": True}
        got = {key: expected[value] for key, value in rows.items()}
    else:
        got = {
            row["id"]: row["template_edited"]
            for row in map(json.loads, out.getvalue().splitlines())
        }
    assert got == {
        str(plain.message_id): None,
        str(unchanged.message_id): False,
        str(edited.message_id): True,
    }
