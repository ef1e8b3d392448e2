"""Carry one delivery over its channel and say what happened. No database writes here."""

import json
import time
from email.utils import make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from clientdesk.delivery import transport, webpush
from clientdesk.delivery.models import Channel, Delivery, OutgoingEndpoint
from clientdesk.delivery.outcomes import Outcome, signing_secrets

SLOW_DOWN_STATUSES = {429, 502, 503, 504}
# The headers an e-mail payload may add (an outreach message's one-click unsubscribe, RFC 8058);
# any other name in a payload is not sent.
EMAIL_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post")


def webhook_body(delivery: Delivery) -> str:
    # The exact bytes signed and sent; sorted keys keep them stable across attempts.
    return json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False)


def send_webhook(delivery: Delivery, endpoint: OutgoingEndpoint) -> Outcome:
    body = webhook_body(delivery)
    headers = transport.sign_headers(
        webhook_id=delivery.webhook_id,
        timestamp=timezone.now(),
        body=body,
        secrets=signing_secrets(endpoint),
    )
    result = transport.post(
        url=endpoint.url,
        body=body.encode(),
        headers=headers,
        allow_private=settings.ALLOW_PRIVATE_WEBHOOK_URLS,
    )
    error = result.error
    if result.status_code == 410:
        error = "HTTP 410 Gone: the endpoint asked to stop, so it is now disabled"
    elif not error and not result.ok:
        error = f"HTTP {result.status_code}"
    return Outcome(
        ok=result.ok,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        excerpt=result.excerpt,
        error=error,
        retry_after=result.retry_after,
        slow_down=result.status_code in SLOW_DOWN_STATUSES or "timed out" in result.error,
        gone=result.status_code == 410,
        endpoint_failing=endpoint.failing_since is not None,
    )


def _email_headers(delivery: Delivery) -> dict[str, str]:
    given = delivery.payload.get("headers") or {}
    headers = {name: str(given[name]) for name in EMAIL_HEADERS if name in given}
    # One Message-ID per delivery, the same on every retry, so mail systems drop duplicates.
    headers["Message-ID"] = make_msgid(idstring=delivery.webhook_id, domain="clientdesk")
    return headers


def send_email(delivery: Delivery) -> Outcome:
    payload = delivery.payload
    started = time.monotonic()
    message = EmailMultiAlternatives(
        subject=payload["subject"],
        body=payload["text"],
        from_email=f"{payload['from_name']} <{settings.DEFAULT_FROM_EMAIL}>",
        to=[payload["to"]],
        reply_to=[payload["reply_to"]] if payload.get("reply_to") else None,
        headers=_email_headers(delivery),
    )
    message.attach_alternative(payload["html"], "text/html")
    try:
        message.send(fail_silently=False)
    except Exception as error:  # any SMTP or socket failure is a failed attempt, retried
        return Outcome(
            ok=False,
            duration_ms=int((time.monotonic() - started) * 1000),
            error=f"{type(error).__name__}: {error}"[:1000],
        )
    return Outcome(ok=True, duration_ms=int((time.monotonic() - started) * 1000))


def _push_once(delivery: Delivery, content: dict[str, object]) -> transport.HttpResult:
    payload = delivery.payload
    plaintext = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    keys = webpush.device_keys(payload["p256dh"], payload["auth"])
    return transport.post(
        url=payload["endpoint"],
        body=webpush.encrypt(plaintext, keys),
        headers=webpush.push_headers(
            endpoint=payload["endpoint"],
            ttl=int(payload["ttl"]),
            urgency=payload["urgency"],
            topic=payload.get("topic"),
        ),
        allow_private=settings.ALLOW_PRIVATE_WEBHOOK_URLS,
    )


def send_push(delivery: Delivery) -> Outcome:
    """One Web Push (RFC 8030) to one device: encrypted for its keys (RFC 8291), signed for its
    push service (RFC 8292). A push service that finds the message too large (413) gets the
    minimal one at once, in the same attempt; 404 and 410 mean the subscription is gone."""
    result = _push_once(delivery, delivery.payload["content"])
    note = ""
    if result.status_code == 413 and delivery.payload.get("minimal"):
        first = result
        result = _push_once(delivery, delivery.payload["minimal"])
        note = "413 Payload Too Large: sent the minimal notification. "
        result = transport.HttpResult(
            status_code=result.status_code,
            duration_ms=first.duration_ms + result.duration_ms,
            excerpt=result.excerpt,
            error=result.error,
            retry_after=result.retry_after,
        )
    error = result.error
    gone = result.status_code in (404, 410)
    if gone:
        error = f"HTTP {result.status_code}: the push subscription is gone, so it was removed"
    elif not error and not result.ok:
        error = f"HTTP {result.status_code}"
    return Outcome(
        ok=result.ok,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        excerpt=(note + result.excerpt) if note else result.excerpt,
        error=(note + error).strip() if note and error else error,
        retry_after=result.retry_after,
        slow_down=result.status_code in SLOW_DOWN_STATUSES or "timed out" in result.error,
        gone=gone,
    )


def perform(delivery: Delivery, endpoint: OutgoingEndpoint | None) -> Outcome:
    """`endpoint`: the outgoing endpoint as the worker read it when it claimed `delivery`."""
    if delivery.channel == Channel.EMAIL:
        return send_email(delivery)
    if delivery.channel == Channel.PUSH:
        return send_push(delivery)
    if endpoint is None or not endpoint.enabled:
        return Outcome(ok=False, duration_ms=0, error="the outgoing endpoint is disabled")
    return send_webhook(delivery, endpoint)
