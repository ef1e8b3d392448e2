"""Messages page and GET /api/v1/messages at a million messages: p50/p95 of each view.

Loads a deterministic data set (clients from `datagen`, messages with both clocks in every
state, the conversation rows the follow-up hook keeps) into one database, then times the real
selectors (`conversations_list`, `messages_list`) in-process, first page and a page 20 cursors
deep, each repeated. Run it once per database:

    .venv/bin/python bench/messages_bench.py --database-url sqlite:///var/bench-followup.sqlite3
    .venv/bin/python bench/messages_bench.py --database-url postgres://postgres@127.0.0.1:5432/wt_followup

`--load` (re)creates the data first (it wipes that database's tables); without it the data of
an earlier load is reused. Results: bench/results/messages_<vendor>.json.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import common

SEED = 20261130
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def load(*, clients: int, messages: int) -> None:
    """Wipe and load: `clients` clients, `messages` messages spread over them in time order,
    with each conversation's row as the follow-up hook would leave it."""
    from django.db import connection

    from clientdesk.accounts.models import User
    from clientdesk.clients.models import Client
    from clientdesk.followup.models import Conversation, FollowUpDue
    from clientdesk.messaging.models import Direction, Message, ReplyState
    from datagen import client_values

    rng = random.Random(SEED)
    common.empty_sent_tables()
    Client.objects.all().delete()
    staff = [
        User.objects.get_or_create(username=f"bench{i}", defaults={"first_name": f"Bench{i}"})[0]
        for i in range(8)
    ]
    common.say("messages", f"clients: {clients:,}")
    for begin in range(0, clients, 5000):
        rows = [Client(**client_values(n)) for n in range(begin, min(begin + 5000, clients))]
        Client.objects.bulk_create(rows)
    client_ids = list(Client.objects.order_by("external_id").values_list("id", flat=True))

    common.say("messages", f"messages: {messages:,}")
    step = timedelta(seconds=(330 * 86400) / messages)  # about eleven months of traffic
    now = START + step * messages
    # Pass 1: who writes when, and which clocks each message starts; then settle the clocks as
    # the follow-up hook would have (the other side's next message answers them).
    plan = []
    for _ in range(messages):
        # A busy few: 30 % of the traffic goes to 1 % of the clients.
        busy = rng.random() < 0.3
        who = rng.randrange(max(1, len(client_ids) // 100) if busy else len(client_ids))
        incoming = rng.random() < 0.25
        expects = (not incoming) and rng.random() < 0.3
        hours = rng.choice([2, 4, 24]) if incoming else rng.choice([8, 16, 40, 80])
        plan.append((who, incoming, expects, hours, rng.randint(1, 20)))
    answered: dict[int, int] = {}
    opened: set[int] = set()
    open_out: dict[int, list[int]] = {}
    open_in: dict[int, int] = {}
    last: dict[int, int] = {}
    unanswered: dict[int, int] = {}
    for i, (who, incoming, expects, _hours, _len) in enumerate(plan):
        last[who] = i
        unanswered[who] = unanswered.get(who, 0) + 1 if incoming else 0
        if incoming:
            for j in open_out.pop(who, []):
                answered[j] = i
            if who not in open_in:
                open_in[who] = i
                opened.add(i)
        else:
            if who in open_in:
                answered[open_in.pop(who)] = i
            if expects:
                open_out.setdefault(who, []).append(i)
                opened.add(i)

    def due(i: int) -> datetime:
        return START + step * i + timedelta(hours=plan[i][3])

    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(messages)]
    batch: list[Message] = []
    dues: list[FollowUpDue] = []
    for i, (who, incoming, expects, _hours, length) in enumerate(plan):
        m = Message(
            id=ids[i],
            client_id=client_ids[who],
            direction=Direction.IN if incoming else Direction.OUT,
            sender=None if incoming else staff[i % len(staff)],
            body=f"Message {i} " + "lorem ipsum " * length,
            source="",
            created_at=START + step * i,
            expects_reply=expects,
        )
        if i in opened:
            m.reply_due_at = due(i)
            if i in answered:
                m.reply_state = ReplyState.ANSWERED
                m.answered_at = START + step * answered[i]
            elif m.reply_due_at < now:
                m.reply_state = ReplyState.OVERDUE
            else:
                m.reply_state = ReplyState.AWAITING
                dues.append(FollowUpDue(message_id=m.id, due_at=m.reply_due_at))
        batch.append(m)
        if len(batch) == 5000 or i == messages - 1:
            Message.objects.bulk_create(batch)
            batch.clear()
    FollowUpDue.objects.bulk_create(dues, batch_size=5000)

    conversations = []
    for who, i in last.items():
        waiting = open_out.get(who, [])
        reply_due = min((due(j) for j in waiting), default=None)
        reply_overdue = any(due(j) < now for j in waiting)
        response_due = due(open_in[who]) if who in open_in else None
        response_overdue = bool(response_due and response_due < now)
        late = [d for d, o in ((reply_due, reply_overdue), (response_due, response_overdue)) if o]
        conversations.append(
            Conversation(
                client_id=client_ids[who],
                last_message_id=ids[i],
                last_message_at=START + step * i,
                last_direction=Direction.IN if plan[i][1] else Direction.OUT,
                last_sender_id=None if plan[i][1] else staff[i % len(staff)].pk,
                unanswered_in=unanswered[who],
                reply_due_at=reply_due,
                reply_overdue=reply_overdue,
                response_due_at=response_due,
                response_overdue=response_overdue,
                overdue_since=min(late, default=None),
            )
        )
    Conversation.objects.bulk_create(conversations, batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    common.say("messages", f"loaded: {messages:,} messages, {len(conversations):,} conversations")


def measure(*, repeat: int) -> dict[str, Any]:
    from django.db import connection

    from clientdesk.accounts.models import User
    from clientdesk.followup.selectors import ConversationFilters as Conv
    from clientdesk.followup.selectors import MessageFilters as Msgs
    from clientdesk.followup.selectors import conversations_list, messages_list
    from clientdesk.messaging.models import Message

    viewer = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser(
        "bench-admin", password=uuid.uuid4().hex
    )
    latest = Message.objects.order_by("-created_at").values_list("client_id", flat=True).first()
    sender = User.objects.filter(username="bench3").first()
    a_month = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)

    def conv(view: str, **kw: Any) -> Any:
        filters = Conv(view=view, **kw)
        return lambda c: conversations_list(user=viewer, filters=filters, cursor=c, limit=25)

    def msgs(**kw: Any) -> Any:
        return lambda c: messages_list(user=viewer, filters=Msgs(**kw), cursor=c, limit=50)

    cases = {
        "page: All": conv("all"),
        "page: Awaiting reply": conv("awaiting"),
        "page: Needs response": conv("needs-response"),
        "page: Overdue": conv("overdue"),
        "page: All, last message from client": conv("all", direction="in"),
        "page: All, sender": conv("all", sender_id=sender.pk if sender else None),
        "page: All, search 'müller'": conv("all", search="müller"),
        "api: all": msgs(),
        "api: awaiting_reply=true": msgs(awaiting_reply=True),
        "api: needs_response=true": msgs(needs_response=True),
        "api: overdue=true": msgs(overdue=True),
        "api: direction=in": msgs(direction="in"),
        "api: client": msgs(client_id=latest),
        "api: since/until one month": msgs(since=a_month[0], until=a_month[1]),
    }

    def timed(run: Any, cursor: Any) -> list[float]:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            run(cursor)
            times.append(time.perf_counter() - t)
        return times

    results: dict[str, Any] = {}
    for name, run in cases.items():
        first = timed(run, None)
        cursor, page = None, run(None)
        for _ in range(19):
            if not page.next_cursor:
                break
            cursor = page.next_cursor
            page = run(cursor)
        deep = timed(run, cursor) if cursor else None
        results[name] = {
            "first_page": common.summary_ms(first),
            "page_20": common.summary_ms(deep) if deep else None,
            "rows": len(page.items),
        }
        common.say("messages", f"{name}: first p95 {results[name]['first_page'].get('p95_ms')} ms")
    return {"vendor": connection.vendor, "cases": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--load", action="store_true")
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    if args.load:
        manage = [str(common.PYTHON), "manage.py", "migrate", "--noinput", "-v0"]
        subprocess.run(
            manage, env=common.django_env(args.database_url), cwd=common.PROJECT, check=True
        )
    common.setup_django(DATABASE_URL=args.database_url)
    if args.load:
        load(clients=args.clients, messages=args.messages)
    other = common.OtherWork()
    result = measure(repeat=args.repeat)
    # CPU that other processes used meanwhile (the database server's included): context for
    # the latencies on a shared 2-core machine.
    result["other_work"] = other.finish()
    result["messages"] = args.messages
    result["measured_at"] = datetime.now(UTC).isoformat()
    out = common.RESULTS_DIR / f"messages_{result['vendor']}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    common.say("messages", f"wrote {out}")


if __name__ == "__main__":
    main()
