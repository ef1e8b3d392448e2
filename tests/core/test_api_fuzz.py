"""Schemathesis generates requests for every API operation from the OpenAPI document: whatever
arrives, the answer is not a 5xx, and errors are problem+json."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.django_db


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


def test_generated_requests_never_break_the_api(make_user, make_client):
    from clientdesk.accounts.services import api_token_create

    make_client()  # something for reads to find
    _, token = api_token_create(user=make_user("Administrator"))
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    failures: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:300]}")
            elif response.status_code >= 400:
                headers = {k.lower(): v for k, v in response.headers.items()}
                content_type = str(headers.get("content-type", ""))
                if "application/problem+json" not in content_type:
                    failures.append(f"{case.method} {case.formatted_path}: {content_type}")

        check()
    assert failures == []
