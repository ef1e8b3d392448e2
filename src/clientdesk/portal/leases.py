"""The table behind the caps on open event streams (`core/live/leases.py`): one row per open
stream of any events process, so every process counts every other's."""

import uuid
import zlib
from datetime import datetime

from django.db import connection, transaction

from clientdesk.portal.models import StreamLease

# The advisory lock's first key (the second is the holder's CRC-32): apart from the ledger's
# and the live events' one-key locks.
_LOCK_CLASS = 0x53545245  # "STRE"


class DatabaseLeaseStore:
    def acquire(
        self, *, holder: str, limit: int, owner: str, now: datetime, expires_at: datetime
    ) -> uuid.UUID | None:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # Two opening streams of one holder take turns, so neither sees a stale count.
                # (SQLite's write transactions take turns already: they begin IMMEDIATE.)
                key = zlib.crc32(holder.encode()) - 2**31
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, key])
            leases = StreamLease.objects.filter(holder=holder)
            if leases.filter(expires_at__gt=now).count() >= limit:
                return None
            leases.filter(expires_at__lte=now).delete()
            return StreamLease.objects.create(
                holder=holder, owner=owner, created_at=now, expires_at=expires_at
            ).id

    def renew(self, *, owner: str, expires_at: datetime) -> None:
        StreamLease.objects.filter(owner=owner).update(expires_at=expires_at)

    def release(self, *, ids: list[uuid.UUID]) -> None:
        for start in range(0, len(ids), 500):
            StreamLease.objects.filter(id__in=ids[start : start + 500]).delete()

    def count(self, *, holder: str, now: datetime) -> int:
        return StreamLease.objects.filter(holder=holder, expires_at__gt=now).count()
