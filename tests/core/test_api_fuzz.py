"""Schemathesis generates requests for every API operation from the OpenAPI document and checks
each answer against the document: no 5xx, and status code, content type, headers and body as
documented (its response-conformance checks). Besides the generated requests (whose random ids
mostly find nothing), each operation is also called with the ids of real objects, so the success
bodies are checked too. Runs on SQLite and, with DATABASE_URL, on PostgreSQL.

Not run here: the checks that judge the server's own validation (`positive_data_acceptance`:
a schema cannot say "a Liquid template that parses" or "a URL that is not private") and the
authentication checks, which tests/accounts/test_permission_matrix.py covers for every URL."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.services.sending import message_send
from clientdesk.messaging.services.templates import template_create

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _keep_the_test_transaction_open():
    """Like Django's test client: requests must not close the connection holding the test's
    transaction."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _failure(case, error: BaseException) -> str:
    parts = getattr(error, "exceptions", [error])
    titles = "; ".join(
        f"{getattr(p, 'title', type(p).__name__)}: {getattr(p, 'message', p)}" for p in parts
    )
    return f"{case.method} {case.formatted_path}: {titles}"[:600]


def _a_file(user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from clientdesk.files.services import file_store

    return file_store(upload=SimpleUploadedFile("notes.txt", b"Notes\n"), user=user)


def test_every_answer_conforms_to_the_openapi_document(make_user, make_client):
    from clientdesk.accounts.services import api_token_create
    from clientdesk.audit.services import audit_sequence

    admin = make_user("Administrator")
    client = make_client()
    version = template_create(author=admin, name="Welcome", body="Hello", language="en")
    sent = message_send(
        sender=admin, client_id=client.id, idempotency_key="k1", meta=RequestMeta(), body="Hi"
    )
    from clientdesk.outreach.services import broadcast_create, broadcast_request_parse

    broadcast, _ = broadcast_create(
        actor=admin,
        request=broadcast_request_parse(
            {"audience": {"client_ids": [str(client.id)]}, "body": "Hi", "category": "service"}
        ),
        idempotency_key="b1",
        meta=RequestMeta(),
    )
    audit_sequence()
    real_ids = {
        "client_id": str(client.id),
        "message_id": str(sent.message_id),
        "template_id": str(version.template_id),
        "sequence": 1,
        "broadcast_id": str(broadcast.id),
        "file_id": str(_a_file(admin).pk),
    }
    _, token = api_token_create(user=admin)
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    failures: list[str] = []

    def run(case):
        case.headers = {**(case.headers or {}), **headers}
        try:
            case.call_and_validate(checks=CHECKS)
        except BaseException as error:  # a FailureGroup: collected, asserted below
            if isinstance(error, KeyboardInterrupt):
                raise
            failures.append(_failure(case, error))

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def generated(case):
            run(case)

        generated()

        names = {p.name for p in operation.path_parameters}
        if names:
            run(operation.Case(path_parameters={n: real_ids[n] for n in names}))
    assert failures == [], "\n".join(sorted(set(failures)))
