"""The optional virus scan: the bytes streamed to clamd (`CLIENTDESK_CLAMD_SOCKET`, a unix
socket path or tcp://host:port) with its INSTREAM command. A scanner that does not answer
refuses the upload (fail closed): an unscanned file is never stored while scanning is on."""

import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from django.conf import settings

from clientdesk.files.errors import FileInfected, ScannerUnavailable

CHUNK = 64 * 1024
MAX_REPLY = 4096


def _connect(address: str) -> socket.socket:
    timeout = float(settings.FILES_CLAMD_TIMEOUT_SECONDS)
    if address.startswith("tcp://"):
        parts = urlsplit(address)
        if not parts.hostname or not parts.port:
            raise ScannerUnavailable("The virus scanner address is not tcp://host:port.")
        return socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock


def _reply(sock: socket.socket) -> str:
    data = b""
    while b"\0" not in data and len(data) < MAX_REPLY:
        part = sock.recv(1024)
        if not part:
            break
        data += part
    return data.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def scan(*, address: str, chunks: Iterable[bytes]) -> None:
    """Return when clamd finds nothing; FileInfected naming what it found; ScannerUnavailable
    when it cannot be reached, times out or answers anything else."""
    try:
        with _connect(address) as sock:
            sock.sendall(b"zINSTREAM\0")
            for chunk in chunks:
                for start in range(0, len(chunk), CHUNK):
                    part = chunk[start : start + CHUNK]
                    sock.sendall(len(part).to_bytes(4, "big") + part)
            sock.sendall(b"\0\0\0\0")
            answer = _reply(sock)
    except OSError as error:
        raise ScannerUnavailable(
            "The virus scanner did not answer, so the file was not accepted. Try again shortly."
        ) from error
    if answer.endswith("OK") and "FOUND" not in answer:
        return
    if answer.endswith("FOUND"):
        found = answer.removeprefix("stream:").removesuffix("FOUND").strip()[:200]
        raise FileInfected(f"The virus scanner found {found} in the file.", found=found)
    raise ScannerUnavailable(
        "The virus scanner could not scan the file, so it was not accepted. Try again shortly."
    )
