"""Document request labels with bidi embedding, override or isolate controls are refused, as
file names lose them: a label is shown beside other words (the request's status in the staff
panel, the cabinet's upload button), which an override left open would reverse. Right-to-left
labels, and the invisible direction marks they may need, are kept."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from clientdesk.clients.models import Client
from clientdesk.messaging.models import DocumentRequest, Message

pytestmark = pytest.mark.django_db

CONTROLS = [
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
]


def send(api: APIClient, client: Client, labels: list[str]) -> Any:
    return api.post(
        f"/api/v1/clients/{client.id}/messages",
        {"body": "Please send", "document_requests": [{"label": label} for label in labels]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )


@pytest.mark.parametrize("control", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_a_label_with_a_bidi_control_is_refused(
    agent: Any, api_for: Callable[[Any], APIClient], client_obj: Client, control: str
) -> None:
    answer = send(api_for(agent), client_obj, ["Passport", f"Bill{control}fdp.exe"])
    assert answer.status_code == 422, answer.content
    assert answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert "document_requests[1].label" in problem["errors"]
    assert f"U+{ord(control):04X}" in problem["detail"]
    assert not Message.objects.exists()
    assert not DocumentRequest.objects.exists()


def test_a_template_label_with_a_bidi_control_is_refused(
    make_user: Callable[..., Any], api_for: Callable[[Any], APIClient]
) -> None:
    manager = make_user("Manager")
    answer = api_for(manager).post(
        "/api/v1/templates",
        {"name": "KYC", "body": "Please send", "document_requests": [{"label": "ID\u202ecard"}]},
        format="json",
    )
    assert answer.status_code == 422, answer.content
    assert "U+202E" in answer.json()["detail"]


def test_right_to_left_labels_and_direction_marks_are_kept(
    agent: Any, api_for: Callable[[Any], APIClient], client_obj: Client
) -> None:
    labels = ["جواز السفر", "\u200fדרכון\u200e (2)"]
    answer = send(api_for(agent), client_obj, labels)
    assert answer.status_code == 201, answer.content
    assert [r["label"] for r in answer.json()["document_requests"]] == labels
