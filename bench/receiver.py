"""A local webhook receiver for the delivery benchmark: verifies, records, answers 204.

`python bench/receiver.py --port P` serves on 127.0.0.1 only: uvicorn (its pure-Python h11
HTTP parser, asyncio loop, one process) running a bare ASGI function, no framework. For every
POST /hook it records the arrival time (`time.time()`, the clock the sender reads too), the
`webhook-id` header, the message id from the body, and whether the Standard Webhooks signature
verified (with the `standardwebhooks` library), then answers 204 No Content. Control paths:
POST /_reset {"secret": "whsec_..."} clears the records and sets the secret to verify with;
GET /_count; GET /_records (with the CPU seconds this process used since the reset, to show
the receiver was not the bottleneck).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import uvicorn
from standardwebhooks import Webhook

STATE: dict[str, Any] = {"webhook": None, "records": [], "cpu_at_reset": 0.0}


def record(body: bytes, headers: dict[str, str], arrived: float) -> None:
    message_id, verified, webhook = None, False, STATE["webhook"]
    try:
        event = webhook.verify(body, headers) if webhook else json.loads(body)
        verified = webhook is not None
        message_id = event["data"]["message"]["id"]
    except Exception:  # noqa: S110 - a bad request is recorded as unverified, not raised
        pass
    STATE["records"].append((arrived, headers.get("webhook-id", ""), message_id, verified))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    status, answer = 200, None
    if scope["path"] == "/hook" and scope["method"] == "POST":
        arrived = time.time()
        record(
            body, {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}, arrived
        )
        status = 204
    elif scope["path"] == "/_reset" and scope["method"] == "POST":
        secret = json.loads(body or b"{}").get("secret")
        STATE.update(webhook=Webhook(secret) if secret else None, records=[])
        STATE["cpu_at_reset"] = time.process_time()
        answer = {"ok": True}
    elif scope["path"] == "/_count":
        answer = {"count": len(STATE["records"])}
    elif scope["path"] == "/_records":
        cpu = round(time.process_time() - STATE["cpu_at_reset"], 3)
        answer = {"records": STATE["records"], "cpu_seconds": cpu}
    else:
        status, answer = 404, {"error": "not found"}
    headers = [(b"content-type", b"application/json")] if answer is not None else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send(
        {"type": "http.response.body", "body": json.dumps(answer).encode() if answer else b""}
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=parser.parse_args().port,
        http="h11",
        loop="asyncio",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )
