"""deploy/nginx.conf limits open event streams per client address (limit_conn, 429), before the
app's own caps: here the app lets the client hold more, so what refuses the 51st is nginx; other
paths from that address are still answered."""

import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.core.proxies import nginx_command
from tests.servers import SSEReader, free_port, procfile_process

pytestmark = pytest.mark.django_db(transaction=True)
CONF = (Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf").read_text()


def test_nginx_refuses_more_streams_per_address_than_its_limit(
    tmp_path: Path, portal_for, client_obj
) -> None:
    limit = int(re.search(r"limit_conn clientdesk_streams (\d+);", CONF).group(1))
    token = portal_for(client_obj).token
    env = {"CLIENTDESK_PORTAL_STREAMS_PER_CLIENT": str(limit + 10)}
    with procfile_process("events", tmp_path / "events.log", **env) as (events, _):
        events_port = int(events.rsplit(":", 1)[1])
        port = free_port()
        command = nginx_command(tmp_path, web=[events_port], events=[events_port], port=port)
        nginx = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        readers: list[SSEReader] = []
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and nginx.poll() is None
                time.sleep(0.1)
            url = f"{base}/portal/api/v1/events?token={token}"
            readers = [SSEReader(url) for _ in range(limit)]
            assert [r.status for r in readers] == [200] * limit
            refused = SSEReader(url)
            assert refused.ended.wait(30)
            assert refused.status == 429
            # The rest of the site still answers that address.
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
            readers.pop().close()
            deadline = time.monotonic() + 30
            while (again := SSEReader(url)).status != 200:
                assert time.monotonic() < deadline, "a closed stream gave its place back"
                time.sleep(0.2)
            readers.append(again)
        finally:
            for reader in readers:
                reader.close()
            nginx.terminate()
            nginx.wait(20)
