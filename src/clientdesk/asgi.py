"""ASGI entry point: `make run` and the Procfile's `events` serve Clientdesk through this."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")
django_application = get_asgi_application()

from clientdesk.core.live.hub import close_on_stop_signals, hub  # noqa: E402 (needs the apps)


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django's application, answering the ASGI lifespan protocol itself.

    Django's handler refuses every scope but HTTP, so a server that speaks lifespan (granian's
    `asgi` interface, uvicorn) logged "ASGI Lifespan errored" at every start. At startup the
    process's event streams are tied to its stop signals: told to stop, it ends them at once
    (core/live/hub.py), so that no open browser tab holds the server; shutdown ends any left.
    """
    if scope["type"] != "lifespan":
        await django_application(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            close_on_stop_signals()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            hub().close()
            await send({"type": "lifespan.shutdown.complete"})
            return
