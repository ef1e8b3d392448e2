"""The ledger's Ed25519 signing key and C2SP signed notes (https://c2sp.org/signed-note,
https://c2sp.org/tlog-checkpoint).

The key lives outside the database, so someone who can rewrite the ledger's tables cannot sign
a checkpoint for the rewritten ledger: `CLIENTDESK_AUDIT_SIGNING_KEY` (base64 of the 32-byte
seed) or `CLIENTDESK_AUDIT_SIGNING_KEY_FILE` (a PKCS#8 PEM file, as `openssl genpkey -algorithm
ed25519` writes), else a key generated once into `var/` for the embedded mode. Retired keys stay
trusted for old checkpoints through `CLIENTDESK_AUDIT_PREVIOUS_VKEYS`.
"""

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

ED25519_ALGORITHM = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line


class NoteError(ValueError):
    """A signed note or checkpoint that does not parse or does not verify."""


@dataclass(frozen=True)
class Verifier:
    name: str
    public_key: bytes  # 32 raw bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ED25519_ALGORITHM]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, body: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, body)
        except InvalidSignature:
            return False
        return True


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_ALGORITHM]) + public_key).digest()[
        :4
    ]


def parse_vkey(vkey: str) -> Verifier:
    try:
        # The name holds no "+", but standard base64 can: split off the first two fields only.
        name, hex_id, encoded = vkey.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        declared = bytes.fromhex(hex_id)
    except (ValueError, binascii.Error) as error:
        raise NoteError(f"not a verifier key (name+keyid+base64): {vkey!r}") from error
    if len(raw) != 33 or raw[0] != ED25519_ALGORITHM:
        raise NoteError(f"verifier key {name!r} is not an Ed25519 key")
    verifier = Verifier(name, raw[1:])
    if verifier.key_id != declared:
        raise NoteError(f"verifier key {name!r}: key id does not match the key")
    return verifier


def _load_private_key() -> Ed25519PrivateKey:
    if seed := os.environ.get("CLIENTDESK_AUDIT_SIGNING_KEY"):
        try:
            return Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed, validate=True))
        except (ValueError, binascii.Error) as error:
            raise NoteError("CLIENTDESK_AUDIT_SIGNING_KEY is not base64 of 32 bytes") from error
    path_setting = os.environ.get("CLIENTDESK_AUDIT_SIGNING_KEY_FILE")
    path = Path(path_setting) if path_setting else Path(settings.VAR_DIR) / "audit_signing_key.pem"
    if not path_setting and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first; read theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise NoteError(f"{path} does not hold an Ed25519 private key")
    return key


@cache
def _private_key() -> Ed25519PrivateKey:
    return _load_private_key()


def reset_key_cache() -> None:
    """Forget the loaded key (tests switch keys; a process reloads on restart)."""
    _private_key.cache_clear()


def origin() -> str:
    return str(settings.CLIENTDESK_AUDIT_ORIGIN)


def current_verifier() -> Verifier:
    public = (
        _private_key()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return Verifier(origin(), public)


def trusted_verifiers() -> list[Verifier]:
    """The current key and every retired one still trusted for old checkpoints."""
    previous = [parse_vkey(v) for v in settings.CLIENTDESK_AUDIT_PREVIOUS_VKEYS]
    return [current_verifier(), *previous]


def note_sign(body: str) -> str:
    """Sign `body` (lines ending in newlines) as a signed note with the current key."""
    if not body.endswith("\n") or "\n\n" in body:
        raise NoteError("a note body is non-empty lines, each ending in a newline")
    verifier = current_verifier()
    signature = _private_key().sign(body.encode())
    encoded = base64.b64encode(verifier.key_id + signature).decode()
    return f"{body}\n{SIGNATURE_PREFIX}{verifier.name} {encoded}\n"


def note_open(note: str, verifiers: list[Verifier]) -> tuple[str, Verifier]:
    """The body of a note signed by one of `verifiers`, and which one; NoteError otherwise."""
    body, separator, signatures = note.rpartition("\n\n")
    if not separator or not signatures.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    body += "\n"
    known = {(v.name, v.key_id): v for v in verifiers}
    for line in signatures[:-1].split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line[:80]!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise NoteError(f"signature by {name!r} is not base64") from error
        if len(raw) != 4 + 64:
            continue
        verifier = known.get((name, raw[:4]))
        if verifier is None:
            continue
        if not verifier.verify(body.encode(), raw[4:]):
            raise NoteError(f"the signature by {name!r} does not verify: the note was changed")
        return body, verifier
    raise NoteError("no signature by a trusted key (is the public key the right one?)")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes


def checkpoint_body(*, tree_size: int, root_hash: bytes) -> str:
    return f"{origin()}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n"


def checkpoint_open(note: str, verifiers: list[Verifier] | None = None) -> Checkpoint:
    """Verify a checkpoint's signature and parse its body."""
    body, verifier = note_open(note, verifiers if verifiers is not None else trusted_verifiers())
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError("a checkpoint has an origin, a tree size and a root hash")
    name, size_text, root_text = lines[:3]
    if name != verifier.name:
        raise NoteError(f"checkpoint origin {name!r} is not the signer's name {verifier.name!r}")
    if not size_text.isascii() or not size_text.isdigit() or size_text != str(int(size_text)):
        raise NoteError(f"checkpoint tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as error:
        raise NoteError("checkpoint root hash is not base64") from error
    if len(root) != 32:
        raise NoteError("checkpoint root hash is not 32 bytes")
    return Checkpoint(name, int(size_text), root)
