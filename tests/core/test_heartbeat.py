"""The worker's heartbeat and the banner administrators see on every staff page while
deliveries wait and no worker was seen for 2 minutes."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import Client as DjangoClient
from django.utils import timezone

from clientdesk.core.models import WorkerHeartbeat
from clientdesk.delivery.models import Delivery, DeliveryStatus
from clientdesk.delivery.services.endpoints import endpoint_configure
from tests.core.observed import stop, wait_until
from tests.sending import send_text
from tests.servers import ROOT, child_env

BANNER = 'id="worker-alert"'
PAGES = ["/clients/", "/messages/", "/integrations/"]


def _banner(user, path: str = "/clients/") -> bool:
    browser = DjangoClient()
    browser.force_login(user)
    page = browser.get(path)
    assert page.status_code == 200, path
    return BANNER in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_banner_shows_while_deliveries_wait_with_no_worker_and_goes_when_one_runs(
    make_user, client_obj, settings, tmp_path
):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    administrator = make_user("Administrator")
    manager = make_user("Manager")
    agent = make_user("Agent")
    # Nothing waits: no banner, though no worker ever ran.
    assert not _banner(administrator)

    # A delivery waits (to a port where nothing listens) and no worker ever ran.
    endpoint_configure(user=administrator, url="http://127.0.0.1:9/hooks", enabled=True)
    send_text(agent, client_obj, "Waiting")
    assert Delivery.objects.filter(status=DeliveryStatus.PENDING).exists()
    for path in PAGES:
        assert _banner(administrator, path), path
    assert "no delivery worker has ever run" in _page(administrator)
    # Nor on the sign-in page, for anyone.
    assert BANNER not in DjangoClient().get("/accounts/login/").content.decode()
    # Only administrators see it.
    assert not _banner(manager)
    assert not _banner(agent)

    # A worker starts: its heartbeat row appears and the banner goes.
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker"],
            cwd=ROOT,
            env=child_env(CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS="1", CLIENTDESK_RETRY_SCALE="1"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: WorkerHeartbeat.objects.exists() or worker.poll() is not None,
            timeout=60,
            what="the worker's heartbeat",
        )
        assert worker.poll() is None, log.read_text()
        beat = WorkerHeartbeat.objects.get()
        assert timezone.now() - beat.seen_at < timedelta(minutes=1)
        assert not _banner(administrator)
    finally:
        stop(worker)

    # Its heartbeat grows old while a delivery is due again: after 2 minutes, the banner is back.
    Delivery.objects.update(status=DeliveryStatus.PENDING, next_attempt_at=timezone.now())
    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(seconds=110))
    assert not _banner(administrator)
    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(minutes=3))
    assert _banner(administrator)
    assert "no delivery worker has been seen for 3 minutes" in _page(administrator)
    assert not _banner(agent)


def _page(user) -> str:
    browser = DjangoClient()
    browser.force_login(user)
    return browser.get("/clients/").content.decode()
