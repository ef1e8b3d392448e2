"""A push service double on loopback (a real HTTP server) and a device's keys, written apart
from Clientdesk's own code: the double verifies each push's VAPID JWT (RFC 8292) with the key in
its `Authorization` header and decrypts the body (RFC 8291) with the device's private key, using
`cryptography`'s HKDF and its JWS-shaped pieces rather than anything in `delivery/webpush.py`."""

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """A browser's side of a subscription: its P-256 key pair and auth secret."""

    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str = ""

    @classmethod
    def new(cls, endpoint: str = "") -> "Device":
        import secrets

        return cls(ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16), endpoint)

    @property
    def public_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def subscription_json(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives in a browser."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64u(self.public_bytes), "auth": b64u(self.auth)},
        }

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 §3.4 and RFC 8188 §2, with HKDF from `cryptography`."""
        salt, record_size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
        sender_public = body[21 : 21 + id_length]
        ciphertext = body[21 + id_length :]
        assert record_size == 4096 and id_length == 65
        assert len(body) <= record_size  # one record
        shared = self.private_key.exchange(
            ec.ECDH(),
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public),
        )
        ikm = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=self.auth,
            info=b"WebPush: info\x00" + self.public_bytes + sender_public,
        ).derive(shared)
        cek = HKDF(
            algorithm=hashes.SHA256(),
            length=16,
            salt=salt,
            info=b"Content-Encoding: aes128gcm\x00",
        ).derive(ikm)
        nonce = HKDF(
            algorithm=hashes.SHA256(), length=12, salt=salt, info=b"Content-Encoding: nonce\x00"
        ).derive(ikm)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        text = padded.rstrip(b"\x00")
        assert text.endswith(b"\x02"), "not the last record"
        return text[:-1]


@dataclass
class Push:
    """One request the double received, checked: `claims` of a JWT that verified, `content`
    decrypted (None when no device of the double holds the key)."""

    path: str
    headers: dict[str, str]
    body: bytes
    claims: dict[str, Any]
    vapid_key: str
    received_at: float
    content: Any = None


def verify_vapid(authorization: str) -> tuple[dict[str, Any], str]:
    """`vapid t=<jwt>, k=<key>` → the JWT's claims, once its ES256 signature verifies with k."""
    assert authorization.startswith("vapid "), authorization
    parts = dict(p.strip().split("=", 1) for p in authorization[len("vapid ") :].split(","))
    token, key = parts["t"], parts["k"]
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(unb64u(header_b64))
    assert header == {"typ": "JWT", "alg": "ES256"}, header
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(key))
    raw = unb64u(signature_b64)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as error:
        raise AssertionError("the VAPID JWT does not verify with its key") from error
    return json.loads(unb64u(claims_b64)), key


@dataclass
class PushService:
    """Answers with `respond(push) -> (status, headers)`; 201 by default."""

    url: str = ""
    devices: dict[str, Device] = field(default_factory=dict)  # by path
    pushes: list[Push] = field(default_factory=list)
    respond: Callable[[Push], tuple[int, dict[str, str]]] = lambda push: (201, {})
    errors: list[str] = field(default_factory=list)

    def device(self, name: str) -> Device:
        """A new device whose endpoint is on this double."""
        device = Device.new(f"{self.url}/push/{name}")
        self.devices[f"/push/{name}"] = device
        return device

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Push]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.errors:
                raise AssertionError(self.errors)
            if len(self.pushes) >= count:
                return self.pushes
            time.sleep(0.02)
        raise AssertionError(f"expected {count} pushes, got {len(self.pushes)}: {self.errors}")


def _handler(service: PushService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                claims, key = verify_vapid(headers.get("authorization", ""))
                push = Push(self.path, headers, body, claims, key, time.monotonic())
                device = service.devices.get(self.path)
                if device is not None:
                    push.content = json.loads(device.decrypt(body))
            except Exception as error:  # recorded, and the test fails on it
                service.errors.append(f"{type(error).__name__}: {error}")
                self.send_response(400)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            status, extra = service.respond(push)
            service.pushes.append(push)
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def push_service() -> Iterator[PushService]:
    service = PushService()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(service))
    server.daemon_threads = True
    service.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
