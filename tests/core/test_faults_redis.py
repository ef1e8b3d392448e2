"""The Procfile's web, events and worker processes with `REDIS_URL` pointing at a `redis-server` of
the test's own (a free loopback port, no persistence, a temporary directory; never a shared one),
which is SIGKILLed and later restarted on the same port while sends flow. On the test database
(PostgreSQL, or a SQLite file), with a real webhook receiver and a staff stream on the events
process, resumed by `Last-Event-ID` if it ends.

While Redis is away no request answers 500 and every new message still reaches the stream (the
database's announcements and the hub's polling stand in); once Redis is back, the events process
subscribes there again and messages go on arriving. At the end every accepted send was delivered
exactly once by webhook-id, every stream event was seen once, and no process died.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from clientdesk.accounts.services import api_token_create
from clientdesk.delivery.models import Channel, Delivery, DeliveryStatus
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.messaging.models import Message
from tests.core.test_faults_database import ResumingReader, Sender, _wait
from tests.core.test_scaling import Tier, _receiver
from tests.servers import child_env, free_port

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
CHANNEL = "clientdesk_events"  # the hub's channel (clientdesk.core.live.hub.CHANNEL)


class RedisServer:
    """`redis-server` on a free loopback port in a temporary directory, without persistence."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="clientdesk-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self.dir / "redis.log", "ab") as out:
            self.process = subprocess.Popen(
                [
                    REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                ],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        _wait(self.answers, 30, f"redis-server on {self.port}")

    def answers(self) -> bool:
        import redis

        assert self.process is not None and self.process.poll() is None, self.log()
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def subscribers(self) -> int:
        """Processes subscribed to the live-event channel (each events process's hub)."""
        import redis

        try:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)
            return int(dict(client.pubsub_numsub(CHANNEL)).get(CHANNEL.encode(), 0))
        except redis.RedisError:
            return 0

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def log(self) -> str:
        return (self.dir / "redis.log").read_text()[-2000:]

    def remove(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not Path(REDIS_SERVER).exists():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    made = RedisServer()
    try:
        yield made
    finally:
        made.remove()


@contextlib.contextmanager
def _tiers(tmp: Path, redis_url: str) -> Iterator[dict[str, Tier]]:
    env = child_env(
        PATH=f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        HOST="127.0.0.1",
        WEB_CONCURRENCY="1",
        EVENTS_CONCURRENCY="1",
        CLIENTDESK_RETRY_SCALE="0",
        CLIENTDESK_ALLOW_PRIVATE_WEBHOOK_URLS="1",
        REDIS_URL=redis_url,
    )
    tiers: dict[str, Tier] = {}
    try:
        for name in ("web", "events", "worker"):
            port = None if name == "worker" else free_port()
            ports = {"PORT": str(port), "EVENTS_PORT": str(port)} if port else {}
            tiers[name] = Tier(name, tmp / f"{name}.log", {**env, **ports}, port)
        for tier in tiers.values():
            tier.wait_ready()
        yield tiers
    finally:
        for tier in tiers.values():
            if tier.process.poll() is None:
                tier.kill(signal.SIGTERM)


def test_a_redis_kill_and_restart_lose_nothing(
    agent, client_obj, make_user, tmp_path, settings, redis_server
):
    settings.ALLOW_PRIVATE_WEBHOOK_URLS = True
    token = api_token_create(user=agent)[1]
    with _receiver() as receiver:
        endpoint, _ = endpoint_configure(
            user=make_user("Administrator"), url=receiver.url, enabled=True
        )
        receiver.secret = endpoint.secret
        with _tiers(tmp_path, redis_server.url) as tiers:
            events = f"http://127.0.0.1:{tiers['events'].port}"
            web = f"http://127.0.0.1:{tiers['web'].port}"
            reader = ResumingReader(events, token)
            reader.start()
            _wait(lambda: redis_server.subscribers() >= 1, 30, "the events process on Redis")
            sender = Sender(web, token, str(client_obj.id))
            sender.start()

            def streamed() -> set[str]:
                return {e["id"] for _, t, e in reader.events if t == "message.created"}

            def phase(what: str, more: int) -> None:
                """`more` sends accepted, and every accepted send so far on the stream."""
                target = len(sender.accepted) + more
                _wait(lambda: len(sender.accepted) >= target, 120, f"sends {what}")
                sent = set(sender.accepted)
                _wait(lambda: streamed() >= sent, 30, f"every send {what} on the stream")
                for tier in tiers.values():
                    assert tier.process.poll() is None, tier.log.read_text()[-3000:]

            try:
                phase("with Redis", 10)
                redis_server.kill()
                phase("while Redis is away", 30)
                redis_server.start()
                # The hub subscribes again (its backoff is at most 5 s).
                _wait(lambda: redis_server.subscribers() >= 1, 60, "the hub back on Redis")
                phase("after Redis came back", 15)
            finally:
                sender.stopping.set()
                sender.join(60)
            accepted = set(sender.accepted)
            _wait(lambda: streamed() >= accepted, 30, "every accepted send on the stream")
            reader.stopping.set()
            reader.join(30)

            # Every accepted send is one message, delivered once by webhook-id.
            assert len(accepted) == len(sender.accepted)
            assert Message.objects.filter(client=client_obj).count() == len(accepted)
            sent = Delivery.objects.filter(channel=Channel.WEBHOOK, payload__type="message.sent")

            def all_delivered() -> bool:
                return not sent.exclude(status=DeliveryStatus.DELIVERED).exists()

            _wait(all_delivered, 120, "every delivery made")
            webhook_ids = set(sent.values_list("webhook_id", flat=True))
            assert len(webhook_ids) == len(accepted)
            _wait(lambda: webhook_ids <= set(receiver.arrivals), 30, "every webhook-id received")
            assert receiver.unverified == 0
            assert {k: n for k, n in receiver.arrivals.items() if n != 1} == {}
            for tier in tiers.values():
                assert tier.process.poll() is None, tier.log.read_text()[-3000:]

    assert 500 not in sender.statuses, sender.statuses
    assert 500 not in reader.statuses, reader.statuses
    ids = Counter(event_id for event_id, _, _ in reader.events)
    assert {i: n for i, n in ids.items() if n > 1} == {}, "an event was seen twice"
    created = Counter(e["id"] for _, t, e in reader.events if t == "message.created")
    assert {m: n for m, n in created.items() if n > 1} == {}, "a message was streamed twice"
    assert set(created) == accepted
    print(f"send statuses {dict(sender.statuses)}, stream opened {dict(reader.statuses)}")
