import threading
import time
import uuid

import pytest

from clientdesk.audit.selectors import audit_verify
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Message, MessageTemplateVersion
from clientdesk.messaging.services.sending import message_send
from clientdesk.messaging.services.templates import template_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(make_user):
    return make_user("Manager", first_name="Maya", last_name="Manager")


def _problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()


def test_create_returns_id_and_version_1(manager, api_for):
    response = api_for(manager).post(
        "/api/v1/templates",
        {"name": "Welcome", "body": "Hi {{ firstName }}", "language": "en"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    uuid.UUID(body["id"])
    assert body["version"] == 1
    assert body["variants"] == {"en": "Hi {{ firstName }}"}
    assert body["default_language"] == "en"


@pytest.mark.parametrize(
    ("payload", "field", "status"),
    [
        ({"name": "", "body": "x", "language": "en"}, "name", 422),
        ({"name": "T", "body": "", "language": "en"}, "body", 422),
        ({"name": "T", "body": "x" * 5001, "language": "en"}, "body", 422),
        ({"name": "T", "body": "x", "language": "xx-nope"}, "language", 422),
        ({"name": "T", "body": "Hi {{ firstName ", "language": "en"}, "line", 422),
        (
            {"name": "T", "body": "{{ sender.password }}", "language": "en"},
            "missing_variables",
            422,
        ),
    ],
)
def test_invalid_templates_are_refused_and_nothing_stored(manager, api_for, payload, field, status):
    body = _problem(api_for(manager).post("/api/v1/templates", payload, format="json"), status)
    assert field in body.get("errors", {}) or field in body
    assert MessageTemplateVersion.objects.count() == 0


def test_duplicate_name_is_409(manager, api_for):
    api = api_for(manager)
    api.post("/api/v1/templates", {"name": "Welcome", "body": "x"}, format="json")
    body = _problem(
        api.post("/api/v1/templates", {"name": "welcome", "body": "y"}, format="json"), 409
    )
    assert "Welcome" in body["detail"] or "welcome" in body["detail"]


@pytest.mark.parametrize("role", ["Agent", "Viewer", None])
def test_only_template_managers_create_and_edit(make_user, manager, api_for, role):
    api = api_for(make_user(role))
    _problem(api.post("/api/v1/templates", {"name": "T", "body": "x"}, format="json"), 403)
    version = template_create(author=manager, name="Existing", body="x", language="en")
    _problem(
        api.patch(f"/api/v1/templates/{version.template_id}", {"body": "y"}, format="json"), 403
    )


def test_editing_makes_a_new_version_and_never_changes_what_was_sent(
    manager, agent, api_for, client_obj
):
    version = template_create(
        author=manager, name="Reminder", body="Old {{firstName}}", language="en"
    )
    message_send(
        sender=agent,
        client_id=client_obj.id,
        template_id=version.template_id,
        idempotency_key="first",
        meta=RequestMeta(),
    )
    edited = api_for(manager).patch(
        f"/api/v1/templates/{version.template_id}", {"body": "New {{firstName}}"}, format="json"
    )
    assert edited.status_code == 200
    assert edited.json()["version"] == 2
    message_send(
        sender=agent,
        client_id=client_obj.id,
        template_id=version.template_id,
        idempotency_key="second",
        meta=RequestMeta(),
    )
    old, new = Message.objects.order_by("created_at")
    assert (old.body, old.template_version, old.source) == ("Old Zoë", 1, "Old {{firstName}}")
    assert (new.body, new.template_version) == ("New Zoë", 2)
    assert old.template_id == new.template_id == version.template_id
    assert old.variables == {"firstName": "Zoë"}
    assert MessageTemplateVersion.objects.get(version=1).variants == {"en": "Old {{firstName}}"}
    assert audit_verify().intact


def test_language_variants_pick_the_client_language_then_the_default(
    manager, agent, api_for, make_client
):
    api = api_for(manager)
    created = api.post(
        "/api/v1/templates",
        {"name": "Docs", "body": 'Hi {{ nickname | default: "there" }}', "language": "en"},
        format="json",
    ).json()
    german = api.patch(
        f"/api/v1/templates/{created['id']}",
        {"language": "de", "body": 'Hallo {{ nickname | default: "zusammen" }}'},
        format="json",
    ).json()
    assert german["version"] == 2
    assert set(german["variants"]) == {"en", "de"}
    sender_api = api_for(agent)
    results = {}
    for language in ["de", "en", "fr"]:
        client = make_client(language=language)
        response = sender_api.post(
            f"/api/v1/clients/{client.id}/messages",
            {"template_id": created["id"]},
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"k-{language}",
        )
        assert response.status_code == 201, response.content
        results[language] = response.json()
    assert results["de"]["body"] == "Hallo zusammen"
    assert results["en"]["body"] == "Hi there"
    assert results["fr"]["body"] == "Hi there"
    assert results["de"]["template"] == {
        "id": created["id"],
        "version": 2,
        "language": "de",
        "edited": False,
    }
    assert results["fr"]["template"]["language"] == "en"


def test_base_language_variant_serves_regional_clients(manager, make_client, agent):
    from clientdesk.messaging.services.sending import message_compose
    from clientdesk.messaging.services.templates import SetVariant, template_change

    version = template_create(author=manager, name="Hello", body="Hello", language="en")
    template_change(
        author=manager, template_id=version.template_id, actions=[SetVariant("Olá", "pt")]
    )
    composed = message_compose(
        sender=agent, client=make_client(language="pt-br"), template_id=version.template_id
    )
    assert composed.rendered.body == "Olá"
    assert composed.template_language == "pt"


def test_patch_rules(manager, api_for):
    api = api_for(manager)
    created = api.post("/api/v1/templates", {"name": "Rules", "body": "Hi"}, format="json").json()
    url = f"/api/v1/templates/{created['id']}"
    assert api.patch(url, {"name": "Renamed"}, format="json").json()["version"] == 1
    _problem(api.patch(url, {"remove_language": "en"}, format="json"), 422)
    _problem(api.patch(url, {"default_language": "de"}, format="json"), 422)
    _problem(api.patch(url, {"language": "de"}, format="json"), 422)
    _problem(api.patch(url, {"body": "{% if %}"}, format="json"), 422)
    api.patch(url, {"language": "de", "body": "Hallo"}, format="json")
    switched = api.patch(url, {"default_language": "de"}, format="json").json()
    assert (switched["default_language"], switched["version"]) == ("de", 3)
    removed = api.patch(url, {"remove_language": "en"}, format="json").json()
    assert removed["variants"] == {"de": "Hallo"}
    assert api.get(url).json()["name"] == "Renamed"
    _problem(api.get(f"/api/v1/templates/{uuid.uuid4()}"), 404)


def test_deactivated_templates_cannot_be_sent_and_leave_the_active_list(
    manager, agent, api_for, client_obj
):
    api = api_for(manager)
    created = api.post("/api/v1/templates", {"name": "Old", "body": "Hi"}, format="json").json()
    api.patch(f"/api/v1/templates/{created['id']}", {"is_active": False}, format="json")
    assert api.get("/api/v1/templates", {"active": "true"}).json()["results"] == []
    assert len(api.get("/api/v1/templates").json()["results"]) == 1
    response = api_for(agent).post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"template_id": created["id"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="deactivated",
    )
    assert "deactivated" in _problem(response, 422)["detail"]


def test_template_search(manager, api_for):
    for name in ["KYC reminder", "Welcome", "Renewal"]:
        template_create(author=manager, name=name, body="x", language="en")
    api = api_for(manager)
    names = [t["name"] for t in api.get("/api/v1/templates", {"search": "re"}).json()["results"]]
    assert names == ["KYC reminder", "Renewal"]


def test_preview_renders_or_names_missing_variables(agent, api_for, make_client, manager):
    client = make_client(first_name="Ana", email="")
    api = api_for(agent)
    url = f"/api/v1/clients/{client.id}/messages/preview"
    ok = api.post(url, {"body": "Hi {{firstName}}"}, format="json")
    assert ok.status_code == 200
    assert ok.json() == {"body": "Hi Ana", "variables": {"firstName": "Ana"}, "template": None}
    missing = _problem(api.post(url, {"body": "{{email}} {{nickname}}"}, format="json"), 422)
    assert missing["missing_variables"] == ["email", "nickname"]
    version = template_create(author=manager, name="T", body="Dear {{fullName}}", language="en")
    templated = api.post(url, {"template_id": str(version.template_id)}, format="json").json()
    assert templated["body"].startswith("Dear Ana")
    assert templated["template"]["version"] == 1
    _problem(api.post(url, {}, format="json"), 422)
    edited = api.post(url, {"body": "x", "template_id": str(version.template_id)}, format="json")
    assert edited.json()["template"]["edited"] is True
    assert edited.json()["body"] == "x"
    _problem(api.post(url, {"template_id": str(uuid.uuid4())}, format="json"), 404)
    assert Message.objects.count() == 0


def test_preview_is_refused_to_viewers(viewer, api_for, client_obj):
    response = api_for(viewer).post(
        f"/api/v1/clients/{client_obj.id}/messages/preview", {"body": "x"}, format="json"
    )
    _problem(response, 403)


def test_idempotency_fingerprint_covers_the_template(manager, agent, client_obj):
    from clientdesk.core.errors import ValidationFailed

    one = template_create(author=manager, name="One", body="One", language="en")
    two = template_create(author=manager, name="Two", body="Two", language="en")
    meta = RequestMeta()
    message_send(
        sender=agent,
        client_id=client_obj.id,
        template_id=one.template_id,
        idempotency_key="k",
        meta=meta,
    )
    again = message_send(
        sender=agent,
        client_id=client_obj.id,
        template_id=one.template_id,
        idempotency_key="k",
        meta=meta,
    )
    assert again.replayed
    with pytest.raises(ValidationFailed, match="different request"):
        message_send(
            sender=agent,
            client_id=client_obj.id,
            template_id=two.template_id,
            idempotency_key="k",
            meta=meta,
        )


def _wait_until_blocked_on_a_lock(thread, timeout=10.0):
    """Return once `thread` waits on a database lock (PostgreSQL shows it), or has finished; on
    SQLite, whose busy wait is invisible, give it a bounded moment to reach the lock."""
    from django.db import connection as conn

    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        if conn.vendor != "postgresql":
            thread.join(timeout=1.0)
            return
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
        thread.join(timeout=0.02)


@pytest.mark.django_db(transaction=True)
def test_two_renames_to_one_name_at_once_give_409_and_keep_one(manager, api_for):
    """The name check passes for both; the unique index decides, and the loser gets a 409
    problem, not an IntegrityError 500."""
    from django.db import connection, transaction

    from clientdesk.messaging.models import MessageTemplate

    first = template_create(author=manager, name="First", body="One", language="en")
    second = template_create(author=manager, name="Second", body="Two", language="en")
    api = api_for(manager)
    held, release, results = threading.Event(), threading.Event(), {}

    def rename_first_and_hold():
        try:
            with transaction.atomic():
                MessageTemplate.objects.filter(pk=first.template_id).update(name="Same name")
                held.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    def rename_second_through_the_api():
        try:
            results["response"] = api.patch(
                f"/api/v1/templates/{second.template_id}", {"name": "same NAME"}, format="json"
            )
        finally:
            connection.close()

    holder = threading.Thread(target=rename_first_and_hold)
    holder.start()
    assert held.wait(timeout=30)
    renamer = threading.Thread(target=rename_second_through_the_api)
    renamer.start()
    _wait_until_blocked_on_a_lock(renamer)
    release.set()
    holder.join(timeout=30)
    renamer.join(timeout=30)

    response = results["response"]
    assert response.status_code == 409, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"] == {"name": ["A template with this name already exists."]}
    assert sorted(MessageTemplate.objects.values_list("name", flat=True)) == ["Same name", "Second"]


def test_a_template_may_expect_a_reply_by_default(manager, agent, api_for, client_obj, client):
    api = api_for(manager)
    created = api.post(
        "/api/v1/templates",
        {
            "name": "KYC: proof of address",
            "body": "Please upload a utility bill.",
            "expects_reply": True,
        },
        format="json",
    )
    assert created.status_code == 201 and created.json()["expects_reply"] is True
    template_id = created.json()["id"]
    sender = api_for(agent)

    def send(**extra):
        answer = sender.post(
            f"/api/v1/clients/{client_obj.id}/messages",
            {**extra},
            format="json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        assert answer.status_code == 201, answer.content
        return Message.objects.get(pk=answer.json()["id"])

    assert send(template_id=template_id).reply_state == "awaiting"  # the template's default
    assert send(template_id=template_id, expects_reply=False).reply_state == "none"
    assert send(body="Just so you know").reply_state == "none"
    changed = api.patch(f"/api/v1/templates/{template_id}", {"expects_reply": False}, format="json")
    assert changed.status_code == 200 and changed.json()["expects_reply"] is False
    assert send(template_id=template_id).reply_state == "none"
    assert send(template_id=template_id, expects_reply=True).reply_state == "awaiting"
    from clientdesk.audit.models import AuditEntry

    updated = AuditEntry.objects.filter(action="template.updated", object_id=template_id).get()
    assert updated.data == {"expects_reply": False}

    # The editor sets it too; the panel marks such templates for the "Expects a reply" box.
    client.force_login(manager)
    saved = client.post(
        f"/templates/{template_id}/",
        {
            "name": "KYC: proof of address",
            "language": "en",
            "body": "Please upload a bill.",
            "expects_reply": "1",
        },
    )
    assert saved.status_code == 302
    client.force_login(agent)
    panel = client.get(f"/clients/{client_obj.id}/send/").content.decode()
    assert f'data-id="{template_id}" data-expects-reply="1"' in panel


def test_a_retry_replays_its_answer_after_the_template_was_deactivated(manager, agent, client_obj):
    """The key's answer stands even when the same request would now be refused."""
    from clientdesk.core.errors import ValidationFailed
    from clientdesk.messaging.models import Message
    from clientdesk.messaging.services.templates import SetActive, template_change

    version = template_create(author=manager, name="Notice", body="Notice", language="en")

    def send(key):
        return message_send(
            sender=agent,
            client_id=client_obj.id,
            template_id=version.template_id,
            idempotency_key=key,
            meta=RequestMeta(),
        )

    first = send("notice-1")
    template_change(author=manager, template_id=version.template_id, actions=[SetActive(False)])
    again = send("notice-1")
    assert again.replayed
    assert again.message_id == first.message_id
    with pytest.raises(ValidationFailed, match="deactivated"):
        send("notice-2")
    assert Message.objects.count() == 1
