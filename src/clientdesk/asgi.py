"""ASGI entry point: uvicorn serves Clientdesk through this."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")
application = get_asgi_application()
