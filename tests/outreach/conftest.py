"""Broadcast fixtures: a manager who may broadcast, clients in bulk, and the worker's batches run
in this process until nothing is due."""

from collections.abc import Callable
from typing import Any

import pytest

from clientdesk.accounts.models import User
from clientdesk.clients.models import Client
from clientdesk.outreach.services import broadcasts_send_batch
from tests.delivery.conftest import administrator, allow_loopback, endpoint, receiver  # noqa: F401


@pytest.fixture
def manager(make_user: Callable[..., User]) -> User:
    return make_user("Manager", first_name="Mona", last_name="Manager")


@pytest.fixture
def many_clients(make_client: Callable[..., Client]) -> Callable[..., list[Client]]:
    def make(n: int, **fields: Any) -> list[Client]:
        return [make_client(**fields) for _ in range(n)]

    return make


def run_batches(limit: int = 500) -> int:
    """The worker's job, in this process: batches until none is due; how many batches ran."""
    batches = 0
    while broadcasts_send_batch(limit=limit):
        batches += 1
    return batches
