"""Uploads and downloads of 10 MB through a real server on loopback (Clientdesk under uvicorn in
its own process, httpx as the client): the bytes arrive whole and hashed, ranges come back
exact, and a body over the limit is refused before it is read."""

import hashlib
import random

import httpx
import pytest

from clientdesk.accounts.models import User
from clientdesk.accounts.services import api_token_create
from tests.servers import uvicorn_process

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


def test_ten_megabytes_up_and_down_through_a_real_server(agent: User) -> None:
    _, token = api_token_create(user=agent)
    headers = {"Authorization": f"Bearer {token}"}
    data = b"%PDF-1.7\n" + random.Random(7).randbytes(10 * MB - 9)
    with uvicorn_process() as url, httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        created = http.post("/api/v1/files", files={"file": ("big.pdf", data, "text/html")})
        assert created.status_code == 201, created.text
        listing = created.json()
        assert listing["size"] == len(data)
        assert listing["sha256"] == hashlib.sha256(data).hexdigest()
        assert listing["content_type"] == "application/pdf"
        whole = http.get(f"/api/v1/files/{listing['id']}")
        assert whole.status_code == 200
        assert hashlib.sha256(whole.content).hexdigest() == listing["sha256"]
        assert whole.headers["content-disposition"].startswith("attachment;")
        assert whole.headers["x-content-type-options"] == "nosniff"
        assert whole.headers["content-security-policy"] == "sandbox"
        middle = http.get(
            f"/api/v1/files/{listing['id']}", headers={"Range": f"bytes={5 * MB}-{6 * MB - 1}"}
        )
        assert middle.status_code == 206
        assert middle.content == data[5 * MB : 6 * MB]
        too_big = http.post(
            "/api/v1/files", files={"file": ("bigger.pdf", data + b"\0" * MB, "application/pdf")}
        )
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"
        just_over = data + b"x"  # within the body's allowance, one byte over the file's limit
        refused = http.post("/api/v1/files", files={"file": ("over.pdf", just_over)})
        assert refused.status_code == 413
        assert refused.json()["type"].endswith("/file-too-large")
