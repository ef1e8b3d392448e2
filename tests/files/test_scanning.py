"""The virus scan through a clamd double on a real socket: EICAR refused, clean files stored
after the whole stream was scanned, and a scanner that does not answer refuses (fail closed)."""

from pathlib import Path

import pytest

from clientdesk.files.models import StoredFile
from tests.files.clamd import EICAR, clamd_double, closed_port
from tests.files.conftest import pdf_bytes, post_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def short_socket_dir() -> Path:
    # A unix socket path must stay under ~100 bytes: pytest's tmp_path can be longer.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="clamd-") as folder:
        yield Path(folder)


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_eicar_is_refused_and_clean_files_pass(transport, short_socket_dir, settings, staff_api):
    where = short_socket_dir if transport == "unix" else None
    with clamd_double(where=where) as (address, server):
        settings.FILES_CLAMD_SOCKET = address
        infected = post_file(staff_api, "/api/v1/files", "eicar.txt", EICAR + b"\n")
        assert infected.status_code == 422, infected.content
        body = infected.json()
        assert body["type"].endswith("/file-infected")
        assert "Eicar-Test-Signature" in body["detail"]
        assert not StoredFile.objects.exists()
        clean = post_file(staff_api, "/api/v1/files", "doc.pdf", pdf_bytes())
        assert clean.status_code == 201, clean.content
        assert server.streams[-1] == (b"zINSTREAM\0", pdf_bytes())


def test_a_large_file_is_scanned_whole_in_chunks(short_socket_dir, settings, staff_api):
    data = (b"line of text\n" * 200_000) + EICAR + b"\n"  # ~2.6 MB, EICAR at the end
    with clamd_double(where=short_socket_dir) as (address, server):
        settings.FILES_CLAMD_SOCKET = address
        refused = post_file(staff_api, "/api/v1/files", "big.txt", data)
        assert refused.status_code == 422
        assert server.streams[-1][1] == data


def test_eicar_from_a_client_is_refused(short_socket_dir, settings, portal_for, client_obj):
    with clamd_double(where=short_socket_dir) as (address, _):
        settings.FILES_CLAMD_SOCKET = address
        api = portal_for(client_obj)
        refused = post_file(api, "/portal/api/v1/files", "eicar.txt", EICAR)
        assert refused.status_code == 422
        assert refused["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("how", ["no-socket-file", "closed-port", "error", "hang"])
def test_a_scanner_that_does_not_answer_refuses_with_503(
    how, short_socket_dir, settings, staff_api
):
    if how == "no-socket-file":
        settings.FILES_CLAMD_SOCKET = str(short_socket_dir / "missing.sock")
        response = post_file(staff_api, "/api/v1/files", "doc.pdf", pdf_bytes())
    elif how == "closed-port":
        settings.FILES_CLAMD_SOCKET = closed_port()
        response = post_file(staff_api, "/api/v1/files", "doc.pdf", pdf_bytes())
    else:
        # A scanner that hangs is given up on after the timeout (shortened here).
        settings.FILES_CLAMD_TIMEOUT_SECONDS = 1.0
        with clamd_double(where=short_socket_dir, mode=how) as (address, _):
            settings.FILES_CLAMD_SOCKET = address
            response = post_file(staff_api, "/api/v1/files", "doc.pdf", pdf_bytes())
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "30"
    assert response.json()["type"].endswith("/file-scanner-unavailable")
    assert not StoredFile.objects.exists()
