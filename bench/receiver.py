"""A local webhook receiver for the delivery benchmark: verifies, records, answers 204.

`python bench/receiver.py --port P` serves on 127.0.0.1 only: uvicorn (its pure-Python h11
HTTP parser, since httptools is not installed; asyncio loop; one process) running a bare ASGI
function, no framework. For every POST /hook it records the arrival time (`time.time()`, the
clock the sender reads too), the `webhook-id` header, the message id from the body, and whether
the Standard Webhooks signature verified (with the `standardwebhooks` library), then answers
204 No Content. Control paths for the benchmark: POST /_reset {"secret": "whsec_..."} clears
the records and sets the secret to verify with; GET /_count; GET /_records (also reports the
CPU seconds this process used since the reset, to show the receiver was not the bottleneck).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import uvicorn
from standardwebhooks import Webhook

STATE: dict[str, Any] = {"webhook": None, "records": [], "cpu_at_reset": 0.0}


async def _body(receive: Any) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _answer(send: Any, status: int, payload: Any = None) -> None:
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json")] if payload is not None else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _record(body: bytes, headers: dict[str, str], arrived: float) -> None:
    message_id = None
    verified = False
    webhook = STATE["webhook"]
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
    body = await _body(receive)
    path = scope["path"]
    if path == "/hook" and scope["method"] == "POST":
        arrived = time.time()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        _record(body, headers, arrived)
        await _answer(send, 204)
    elif path == "/_reset" and scope["method"] == "POST":
        secret = json.loads(body or b"{}").get("secret")
        STATE["webhook"] = Webhook(secret) if secret else None
        STATE["records"] = []
        STATE["cpu_at_reset"] = time.process_time()
        await _answer(send, 200, {"ok": True})
    elif path == "/_count":
        await _answer(send, 200, {"count": len(STATE["records"])})
    elif path == "/_records":
        cpu = time.process_time() - STATE["cpu_at_reset"]
        await _answer(send, 200, {"records": STATE["records"], "cpu_seconds": round(cpu, 3)})
    else:
        await _answer(send, 404, {"error": "not found"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        http="h11",
        loop="asyncio",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
