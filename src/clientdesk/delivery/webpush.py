"""Web Push on the wire: the VAPID key and its JWT (RFC 8292), the `aes128gcm` encryption of a
push message (RFC 8291, RFC 8188) and the headers of RFC 8030. No database, no network.

Built on `cryptography` (already a dependency: ECDH on P-256, HKDF-SHA-256 as two HMACs,
AES-128-GCM, ES256) rather than `pywebpush`: that library sends with `requests`, outside the
SSRF-pinned transport every delivery goes through, checks no payload size and defaults to a TTL
of 0; what it would add here is about a hundred lines."""

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

# RFC 8291 §4: one record of 4,096 octets holds the 86-octet header, the 16-octet tag, the
# padding delimiter and at most 3,993 octets of plaintext.
RECORD_SIZE = 4096
MAX_PLAINTEXT = 3993
# RFC 8292 §2: `exp` at most 24 h ahead; Apple refuses more than one day, so 12 h.
JWT_LIFETIME_SECONDS = 12 * 3600
KEY_FILE = "vapid_private_key.pem"


class VapidKeyError(ValueError):
    pass


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding (browsers send it without); raises ValueError."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("not base64url")
    cleaned = text.rstrip("=")
    if any(c not in _B64URL for c in cleaned):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError) as error:
        raise ValueError("not base64url") from error


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# --- the VAPID key ---------------------------------------------------------------------------


def _key_from_setting(value: str) -> ec.EllipticCurvePrivateKey:
    """CLIENTDESK_VAPID_PRIVATE_KEY: base64url of the 32-byte private scalar (what `web-push
    generate-vapid-keys` and py-vapid print) or a PEM private key."""
    value = value.strip()
    try:
        if value.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(value.encode(), password=None)
        else:
            raw = b64url_decode(value)
            if len(raw) != 32:
                raise ValueError("not 32 bytes")
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError as error:
        raise VapidKeyError(
            "CLIENTDESK_VAPID_PRIVATE_KEY must be base64url of a 32-byte P-256 private key, or "
            "a PEM private key"
        ) from error
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise VapidKeyError("CLIENTDESK_VAPID_PRIVATE_KEY is not a P-256 key")
    return key


def _key_from_var_dir() -> ec.EllipticCurvePrivateKey:
    """Generated once into var/ (the embedded mode), outside the database: a restored database
    keeps working subscriptions only with the same key."""
    path = Path(settings.VAR_DIR) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written whole under another name, then linked: a process starting at the same time
        # reads either no file or a complete one, never half of one, and the first link wins.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".vapid-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise VapidKeyError(f"{path} does not hold a P-256 private key")
    return key


@cache
def vapid_private_key() -> ec.EllipticCurvePrivateKey:
    if settings.VAPID_PRIVATE_KEY:
        return _key_from_setting(settings.VAPID_PRIVATE_KEY)
    return _key_from_var_dir()


def reset_key_cache() -> None:
    """Forget the loaded key (tests switch keys; a process reloads on restart)."""
    vapid_private_key.cache_clear()


def _uncompressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def vapid_public_key() -> str:
    """The application server key browsers subscribe with: base64url of the uncompressed
    P-256 point (65 bytes)."""
    return b64url(_uncompressed(vapid_private_key().public_key()))


def vapid_subject() -> str:
    return str(settings.VAPID_SUBJECT)


def endpoint_origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = parts.port
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def vapid_authorization(endpoint: str, *, now: float | None = None) -> str:
    """`Authorization: vapid t=<ES256 JWT>, k=<public key>` for a push to `endpoint`."""
    key = vapid_private_key()
    header = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
    claims = {
        "aud": endpoint_origin(endpoint),
        "exp": int((now or time.time()) + JWT_LIFETIME_SECONDS),
        "sub": vapid_subject(),
    }
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: raw r || s, not DER
    return f"vapid t={header}.{body}.{b64url(signature)}, k={vapid_public_key()}"


# --- the subscription's keys and the encryption ---------------------------------------------


@dataclass(frozen=True)
class DeviceKeys:
    """A subscription's `keys`: the device's P-256 public key and its authentication secret."""

    p256dh: bytes
    auth: bytes


def device_keys(p256dh: str, auth: str) -> DeviceKeys:
    """Check a subscription's keys as a browser gives them; raises ValueError saying what is
    wrong."""
    try:
        public = b64url_decode(p256dh)
    except ValueError as error:
        raise ValueError("keys.p256dh is not base64url") from error
    try:
        secret = b64url_decode(auth)
    except ValueError as error:
        raise ValueError("keys.auth is not base64url") from error
    if len(public) != 65 or public[0] != 4:
        raise ValueError("keys.p256dh is not an uncompressed P-256 public key (65 bytes)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
    except ValueError as error:
        raise ValueError("keys.p256dh is not a point on P-256") from error
    if len(secret) != 16:
        raise ValueError("keys.auth is not 16 bytes")
    return DeviceKeys(public, secret)


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def encrypt(
    plaintext: bytes,
    keys: DeviceKeys,
    *,
    server_key: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """RFC 8291 `aes128gcm`: one record, header `salt ‖ rs ‖ idlen ‖ keyid` with the server's
    one-time public key as keyid. `server_key` and `salt` are for test vectors only."""
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"a push message holds at most {MAX_PLAINTEXT} bytes")
    server_key = server_key or ec.generate_private_key(ec.SECP256R1())
    salt = salt or secrets.token_bytes(16)
    server_public = _uncompressed(server_key.public_key())
    device_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), keys.p256dh)
    shared = server_key.exchange(ec.ECDH(), device_public)
    # HKDF-SHA-256 (RFC 5869) written out: each output here is a single block.
    prk_key = _hmac(keys.auth, shared)
    ikm = _hmac(prk_key, b"WebPush: info\x00" + keys.p256dh + server_public + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
    nonce = _hmac(prk, b"Content-Encoding: nonce\x00\x01")[:12]
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)  # 0x02: the last record
    header = salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(server_public)]) + server_public
    return header + ciphertext


def push_headers(*, endpoint: str, ttl: int, urgency: str, topic: str | None) -> dict[str, str]:
    headers = {
        "authorization": vapid_authorization(endpoint),
        "content-encoding": "aes128gcm",
        "content-type": "application/octet-stream",
        "ttl": str(ttl),
        "urgency": urgency,
        "user-agent": "Clientdesk-WebPush/1",
    }
    if topic:
        headers["topic"] = topic
    return headers


def topic_for(value: str) -> str:
    """A `Topic` (RFC 8030 §5.4: at most 32 characters of the base64url alphabet) derived from
    `value`: pushes with the same topic replace each other while the device is away."""
    return b64url(hashlib.sha256(value.encode()).digest())[:32]
