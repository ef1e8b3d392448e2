"""A small clamd double: a real socket server (unix or TCP) speaking clamd's INSTREAM protocol
(`zINSTREAM\\0`, then chunks each prefixed with its 4-byte big-endian length, then a zero
length), answering `stream: Eicar-Test-Signature FOUND` when the stream holds the EICAR test
string and `stream: OK` otherwise. It records what it received."""

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
MAX_STREAM = 25 * 1024 * 1024


class _Handler(socketserver.BaseRequestHandler):
    server: "_Server"

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = self.request.recv(n - len(data))
            if not part:
                raise ConnectionError("closed early")
            data += part
        return data

    def handle(self) -> None:
        if self.server.mode == "hang":
            self.server.hung.wait(60)
            return
        command = b""
        while not command.endswith(b"\0"):
            part = self.request.recv(1)
            if not part:
                return
            command += part
        received = b""
        while True:
            length = int.from_bytes(self._read(4), "big")
            if length == 0:
                break
            received += self._read(length)
            if len(received) > MAX_STREAM:
                self.request.sendall(b"INSTREAM size limit exceeded. ERROR\0")
                return
        self.server.streams.append((command, received))
        if self.server.mode == "error":
            self.request.sendall(b"stream: Can't allocate memory ERROR\0")
        elif EICAR in received:
            self.request.sendall(b"stream: Eicar-Test-Signature FOUND\0")
        else:
            self.request.sendall(b"stream: OK\0")


class _Server(socketserver.ThreadingMixIn, socketserver.BaseServer):
    daemon_threads = True
    mode = "scan"
    streams: list[tuple[bytes, bytes]]
    hung: threading.Event


class _UnixServer(_Server, socketserver.UnixStreamServer):
    pass


class _TcpServer(_Server, socketserver.TCPServer):
    allow_reuse_address = True


@contextmanager
def clamd_double(*, where: Path | None = None, mode: str = "scan") -> Iterator[tuple[str, _Server]]:
    """Yields (address for CLIENTDESK_CLAMD_SOCKET, server): a unix socket under `where`, or
    tcp://127.0.0.1:PORT when `where` is None."""
    server: _Server
    if where is not None:
        path = where / "clamd.sock"
        server = _UnixServer(str(path), _Handler)
        address = str(path)
    else:
        server = _TcpServer(("127.0.0.1", 0), _Handler)
        address = f"tcp://127.0.0.1:{server.server_address[1]}"
    server.mode = mode
    server.streams = []
    server.hung = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield address, server
    finally:
        server.hung.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"
