"""What an attempt produced and how it is signed: shared by the channels (which carry a delivery)
and the services (which record the outcome), so neither imports the other."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from clientdesk.delivery.models import OutgoingEndpoint


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced, whatever the channel."""

    ok: bool
    duration_ms: int
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    retry_after: float | None = None
    slow_down: bool = False
    gone: bool = False
    # The endpoint had a failing clock running when the attempt began (webhook only); a
    # success then stops it. None: not known, so look.
    endpoint_failing: bool | None = None


def signing_secrets(endpoint: OutgoingEndpoint, *, now: datetime | None = None) -> list[str]:
    now = now or timezone.now()
    secrets = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires and expires > now:
        secrets.append(endpoint.previous_secret)
    return secrets
