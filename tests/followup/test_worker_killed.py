"""A real process killed between claiming due rows and committing their transitions loses none
of them, and no transition happens twice; on PostgreSQL another worker skips the rows while
they are held."""

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from clientdesk.audit.models import ActivityEvent, ActivityType
from clientdesk.core.request_meta import RequestMeta
from clientdesk.followup.models import FollowUpDue
from clientdesk.followup.services import followup_overdue_run
from clientdesk.messaging.models import Message, ReplyState
from clientdesk.messaging.services.sending import message_send
from tests.delivery.test_worker_processes import _database_url

pytestmark = pytest.mark.django_db(transaction=True)

CLAIM_AND_HANG = textwrap.dedent(
    """
    import sys, time
    import django
    django.setup()
    from django.db import transaction
    from django.utils import timezone
    from clientdesk.followup.services import overdue_apply, overdue_claim

    now = timezone.now()
    with transaction.atomic():
        claimed = overdue_claim(now=now, limit=100)
        overdue_apply(claimed[0], now=now)  # one transition written, none committed
        print(len(claimed), flush=True)
        time.sleep(120)
    """
)


def test_a_worker_killed_between_claim_and_commit_loses_no_transition(agent, make_client):
    messages = []
    for _ in range(3):
        result = message_send(
            sender=agent,
            client_id=make_client().id,
            body="Please reply",
            idempotency_key=str(uuid.uuid4()),
            meta=RequestMeta(),
            expects_reply=True,
            reply_due_at=timezone.now() + timedelta(seconds=1),
        )
        messages.append(result.message_id)
    FollowUpDue.objects.update(due_at=timezone.now() - timedelta(seconds=1))

    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CLIENTDESK_VAR_DIR": str(settings.VAR_DIR),
        "DJANGO_SETTINGS_MODULE": "clientdesk.settings",
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_HANG],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = worker.stdout.readline() if worker.stdout else ""
        assert line.strip() == "3", worker.stderr.read() if worker.stderr else line
        if connection.vendor == "postgresql":
            # The held rows are skipped, not waited for and not done twice.
            followup_overdue_run()
            assert Message.objects.filter(reply_state=ReplyState.OVERDUE).count() == 0
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert FollowUpDue.objects.count() == 3  # the killed transaction changed nothing
    assert followup_overdue_run() is None
    assert followup_overdue_run() is None
    states = set(Message.objects.filter(pk__in=messages).values_list("reply_state", flat=True))
    assert states == {ReplyState.OVERDUE}
    for message_id in messages:
        events = ActivityEvent.objects.filter(
            type=ActivityType.REPLY_OVERDUE, subject_id=message_id
        )
        assert events.count() == 1
