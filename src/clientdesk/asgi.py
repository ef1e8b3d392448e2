"""ASGI entry point: `make run` and the Procfile's `events` serve Clientdesk through this."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")
django_application = get_asgi_application()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django's application, answering the ASGI lifespan protocol itself.

    Django's handler refuses every scope but HTTP, so a server that speaks lifespan (granian's
    `asgi` interface, uvicorn) logged "ASGI Lifespan errored" at every start. Clientdesk has
    nothing to start or stop with the server: startup and shutdown are acknowledged at once.
    """
    if scope["type"] != "lifespan":
        await django_application(scope, receive, send)
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
