#!/usr/bin/env python3
"""Check Clientdesk ledger evidence without Clientdesk: Python 3.11+ and `cryptography` only.

  rfc9162.py record RECORD.json
      the record's content hashes to its `hash` (docs/AUDIT.md, "The record hash")
  rfc9162.py checkpoint CHECKPOINT --key KEY
      the checkpoint is signed by KEY; prints its origin, tree size and root (hex)
  rfc9162.py inclusion CHECKPOINT RECORD.json PROOF.json --key KEY
      the record's content hashes to its `hash`, which is leaf `sequence - 1` of the signed tree
  rfc9162.py consistency OLD_CHECKPOINT NEW_CHECKPOINT PROOF.json --key KEY [--key KEY]
      both checkpoints are signed (by any KEY given: a key and its predecessor after a
      rotation) and the new tree extends the old one
  rfc9162.py root PAGE.json [PAGE.json ...] [--size N] [--checkpoint CHECKPOINT --key KEY]
      every record's content hashes to its `hash`, each `prev_hash` is the hash before it, and
      the RFC 9162 root of the first N records (all by default) is printed, or compared with
      the checkpoint's signed root

RECORD.json is one item of the "results" of GET /api/v1/audit/records, exactly as returned; a
PAGE.json is a whole page (or a list of records), pages together holding records #1 onwards;
PROOF.json is what the proof endpoints return. KEY is the verifier key
`<name>+<key id>+<base64 key>` ("vkey" of GET /api/v1/audit/public-key, shown on the Audit
page), a file holding it, or the PEM file of the Audit page's "Download public key"; get it
from the business directly, not from the server whose ledger you check.

Nothing in the files is trusted: a record is checked against its own content, a checkpoint
against the key, a proof against the signed root. Exit 0 when the evidence holds, 1 when it
does not, 2 when an input cannot be read (the message says which and why).
"""

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_JSON_BYTES = 64 * 2**20  # a page of 1,000 records of the largest kind fits many times
MAX_NOTE_BYTES = 64 * 2**10
MAX_PROOF_HASHES = 64  # a tree of 2**63 records needs 63
GENESIS_HASH = "0" * 64
RECORD_FIELDS = frozenset(
    {"sequence", "created_at", "actor", "action", "object_type", "object_id", "data"}
    | {"prev_hash", "hash"}
)
ACTOR_FIELDS = frozenset({"type", "id", "name"})
INCLUSION_FIELDS = frozenset({"leaf_index", "tree_size", "hashes"})
CONSISTENCY_FIELDS = frozenset({"first", "second", "hashes"})
ACTOR_TYPES = frozenset({"staff", "client", "system"})
HEX64 = re.compile(r"[0-9a-f]{64}")
# What the API writes: UTC with a "Z", microseconds only when there are any.
CREATED_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")


class Unreadable(Exception):
    """An input that cannot be read as what it should be (exit 2)."""


class Fails(Exception):
    """Evidence that does not hold (exit 1)."""


# --- RFC 9162 ---------------------------------------------------------------------------


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves: list[bytes]) -> bytes:
    """Merkle tree hash, iteratively: hash level by level, carrying a lone right node up."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [leaf(x) for x in leaves]
    while len(level) > 1:
        pairs = [node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def inclusion_root(index: int, size: int, leaf_data: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf(leaf_data)
    for p in path:
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def consistent(first: int, second: int, old: bytes, new: bytes, path: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if first == second:
        return not path and old == new
    if first == 0:
        return not path
    if first > second or not path:
        return False
    if first & (first - 1) == 0:
        path = [old, *path]
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old and sr == new


# --- reading inputs strictly --------------------------------------------------------------


def read_bytes(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except OSError as error:
        raise Unreadable(f"{path}: cannot read: {error.strerror or error}") from error
    if len(raw) > limit:
        raise Unreadable(f"{path}: larger than {limit:,} bytes")
    return raw


def read_text(path: str, limit: int) -> str:
    try:
        return read_bytes(path, limit).decode("utf-8")
    except UnicodeDecodeError as error:
        raise Unreadable(f"{path}: not UTF-8 text (byte {error.start})") from error


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two readers of the same file could see two different values.
            raise ValueError(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(path: str) -> Any:
    text = read_text(path, MAX_JSON_BYTES)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise Unreadable(
            f"{path}: not JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from error
    except RecursionError as error:
        raise Unreadable(f"{path}: nested too deeply to be a Clientdesk document") from error
    except ValueError as error:  # duplicate keys, NaN, integers of thousands of digits
        raise Unreadable(f"{path}: {error}") from error


def _exact_fields(value: Any, fields: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unreadable(f"{what} is not a JSON object")
    missing, extra = sorted(fields - value.keys()), sorted(value.keys() - fields)
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected {', '.join(repr(k[:40]) for k in extra[:5])}")
    if problems:
        raise Unreadable(f"{what} does not have the API's fields: {'; '.join(problems)}")
    return value


def _integer(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**63:
        raise Unreadable(f"{what} is not a whole number from {minimum} to 2**63 - 1")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise Unreadable(f"{what} is not a string")
    return value


def _hashes(value: Any, what: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > MAX_PROOF_HASHES:
        raise Unreadable(f"{what} is not a list of at most {MAX_PROOF_HASHES} hashes")
    out = []
    for i, item in enumerate(value):
        try:
            raw = base64.b64decode(_string(item, f"{what}[{i}]"), validate=True)
        except binascii.Error as error:
            raise Unreadable(f"{what}[{i}] is not base64") from error
        if len(raw) != 32:
            raise Unreadable(f"{what}[{i}] is not a 32-byte hash")
        out.append(raw)
    return out


# --- records ------------------------------------------------------------------------------


def record_fields(record: Any, what: str) -> dict[str, Any]:
    """The fields that go into the record's hash, from the API's representation."""
    record = _exact_fields(record, RECORD_FIELDS, what)
    sequence = _integer(record["sequence"], f"{what}: sequence", minimum=1)
    what = f"record #{sequence}"
    created_at = _string(record["created_at"], f"{what}: created_at")
    if not CREATED_AT.fullmatch(created_at):
        raise Unreadable(f"{what}: created_at is not as the API writes it (UTC, ending in Z)")
    actor = _exact_fields(record["actor"], ACTOR_FIELDS, f"{what}: actor")
    if _string(actor["type"], f"{what}: actor type") not in ACTOR_TYPES:
        raise Unreadable(f"{what}: actor type is not one of {', '.join(sorted(ACTOR_TYPES))}")
    if actor["id"] is not None:
        _string(actor["id"], f"{what}: actor id")
    for name in ("action", "object_type", "object_id"):
        _string(record[name], f"{what}: {name}")
    _string(actor["name"], f"{what}: actor name")
    for name in ("prev_hash", "hash"):
        if not HEX64.fullmatch(_string(record[name], f"{what}: {name}")):
            raise Unreadable(f"{what}: {name} is not 64 lowercase hex digits")
    return {
        "sequence": sequence,
        "created_at": created_at[:-1] + "+00:00",
        "actor_type": actor["type"],
        "actor_id": actor["id"] or "",
        "actor_label": actor["name"],
        "action": record["action"],
        "object_type": record["object_type"],
        "object_id": record["object_id"],
        "data": record["data"],
        "prev_hash": record["prev_hash"],
    }


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    """The bytes a record's hash covers (docs/AUDIT.md, "The record hash")."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise Unreadable(
            f"record #{fields['sequence']}: holds a lone surrogate, which no record can"
        ) from error


def check_record(record: Any, what: str = "the record") -> dict[str, Any]:
    """The record, once its content is shown to hash to its `hash`; Fails otherwise."""
    fields = record_fields(record, what)
    recomputed = hashlib.sha256(canonical_bytes(fields)).hexdigest()
    if recomputed != record["hash"]:
        raise Fails(
            f"record #{fields['sequence']} is NOT intact: its content hashes to "
            f"{recomputed}, not to its hash {record['hash']} (the content or the hash was "
            "changed)"
        )
    intact: dict[str, Any] = record
    return intact


def check_chain(records: list[dict[str, Any]]) -> None:
    """Records #1..N in order, each linked to the one before."""
    for expected, record in enumerate(records, start=1):
        if record["sequence"] != expected:
            raise Fails(
                f"record #{expected} is missing (found #{record['sequence']} in its place): "
                "the pages must hold every record from #1"
            )
        prev = records[expected - 2]["hash"] if expected > 1 else GENESIS_HASH
        if record["prev_hash"] != prev:
            raise Fails(f"record #{expected}: prev_hash is not the hash of the record before")


# --- keys and checkpoints -----------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    name: str | None  # None: a PEM key, whose name is the one the signature line gives
    public_key: bytes

    def key_id(self, name: str) -> bytes:
        return hashlib.sha256(name.encode() + b"\n\x01" + self.public_key).digest()[:4]


def parse_key(value: str) -> Key:
    path = Path(value)
    text = value
    try:
        if path.is_file():
            text = read_text(value, MAX_NOTE_BYTES)
    except (OSError, ValueError):  # a vkey is not a path the system can look at
        pass
    if "-----BEGIN PUBLIC KEY-----" in text:
        try:
            pem = serialization.load_pem_public_key(text.encode())
        except ValueError as error:
            raise Unreadable(f"{value}: not a PEM public key") from error
        if not isinstance(pem, Ed25519PublicKey):
            raise Unreadable(f"{value}: not an Ed25519 public key")
        raw = pem.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return Key(None, raw)
    try:
        name, hex_id, encoded = text.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        declared = bytes.fromhex(hex_id)
    except (ValueError, binascii.Error) as error:
        raise Unreadable(
            f"key {value[:80]!r}: neither a verifier key (name+keyid+base64) nor a PEM file"
        ) from error
    if len(raw) != 33 or raw[0] != 0x01:
        raise Unreadable(f"key {name!r}: not an Ed25519 verifier key")
    key = Key(name, raw[1:])
    if key.key_id(name) != declared:
        raise Unreadable(f"key {name!r}: its key id does not match the key")
    return key


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes


def read_checkpoint(path: str, keys: list[Key]) -> Checkpoint:
    """A C2SP signed note whose signature by one of `keys` verifies; Fails otherwise."""
    note = read_text(path, MAX_NOTE_BYTES)
    body, separator, signatures = note.rpartition("\n\n")
    if not separator or not body or not signatures.endswith("\n"):
        raise Unreadable(f"{path}: not a signed note (lines, a blank line, signature lines)")
    body += "\n"
    verified_by = None
    for line in signatures[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise Unreadable(f"{path}: not a signature line: {line[:80]!r}")
        name, _, encoded = line[2:].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise Unreadable(f"{path}: the signature by {name[:80]!r} is not base64") from error
        if len(raw) != 4 + 64:
            continue  # not an Ed25519 signature: someone else's, ignored as C2SP says
        for key in keys:
            if key.name not in (None, name) or key.key_id(name) != raw[:4]:
                continue
            try:
                Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[4:], body.encode())
            except InvalidSignature:
                raise Fails(
                    f"{path}: the signature by {name!r} does NOT verify: the checkpoint was "
                    "changed after it was signed"
                ) from None
            verified_by = name
        if verified_by:
            break
    if verified_by is None:
        raise Fails(f"{path}: NOT signed by the key given (is it the right key?)")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise Unreadable(f"{path}: a checkpoint has an origin, a tree size and a root hash")
    origin, size_text, root_text = lines[:3]
    if origin != verified_by:
        raise Fails(f"{path}: origin {origin!r} is not the signer's name {verified_by!r}")
    if not re.fullmatch(r"0|[1-9][0-9]{0,18}", size_text) or int(size_text) >= 2**63:
        raise Unreadable(f"{path}: tree size {size_text[:40]!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as error:
        raise Unreadable(f"{path}: the root hash is not base64") from error
    if len(root) != 32:
        raise Unreadable(f"{path}: the root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root)


# --- commands -----------------------------------------------------------------------------


def cmd_record(args: argparse.Namespace) -> str:
    record = check_record(load_json(args.record))
    return f"record #{record['sequence']} is intact: its content hashes to {record['hash']}"


def cmd_checkpoint(args: argparse.Namespace) -> str:
    checkpoint = read_checkpoint(args.checkpoint, args.key)
    return f"origin {checkpoint.origin}\ntree_size {checkpoint.size}\nroot {checkpoint.root.hex()}"


def cmd_inclusion(args: argparse.Namespace) -> str:
    checkpoint = read_checkpoint(args.checkpoint, args.key)
    record = check_record(load_json(args.record))
    proof = _exact_fields(
        load_json(args.proof), frozenset({"leaf_index", "tree_size", "hashes"}), args.proof
    )
    index = _integer(proof["leaf_index"], f"{args.proof}: leaf_index")
    size = _integer(proof["tree_size"], f"{args.proof}: tree_size")
    hashes = _hashes(proof["hashes"], f"{args.proof}: hashes")
    sequence = record["sequence"]
    if size != checkpoint.size:
        raise Fails(f"the proof is for a tree of {size}, the checkpoint signs {checkpoint.size}")
    if index != sequence - 1:
        raise Fails(f"the proof is for leaf {index}, record #{sequence} is leaf {sequence - 1}")
    if inclusion_root(index, size, bytes.fromhex(record["hash"]), hashes) != checkpoint.root:
        raise Fails(f"record #{sequence} is NOT in the checkpointed tree of {size}")
    return f"record #{sequence} IS in the checkpointed tree of {size}"


def cmd_consistency(args: argparse.Namespace) -> str:
    old = read_checkpoint(args.old, args.key)
    new = read_checkpoint(args.new, args.key)
    proof = _exact_fields(
        load_json(args.proof), frozenset({"first", "second", "hashes"}), args.proof
    )
    first = _integer(proof["first"], f"{args.proof}: first")
    second = _integer(proof["second"], f"{args.proof}: second")
    hashes = _hashes(proof["hashes"], f"{args.proof}: hashes")
    if old.origin != new.origin:
        raise Fails(f"the checkpoints are of two ledgers: {old.origin!r} and {new.origin!r}")
    if (first, second) != (old.size, new.size):
        raise Fails(
            f"the proof is from {first} to {second}, the checkpoints sign {old.size} and {new.size}"
        )
    if not consistent(old.size, new.size, old.root, new.root, hashes):
        raise Fails(f"checkpoint {new.size} does NOT extend checkpoint {old.size}")
    return f"checkpoint {new.size} extends checkpoint {old.size}"


def _page_records(path: str) -> Iterable[Any]:
    page = load_json(path)
    if isinstance(page, dict) and "results" in page:
        page = page["results"]
    if not isinstance(page, list):
        raise Unreadable(f"{path}: neither a page of records nor a list of records")
    return page


def cmd_root(args: argparse.Namespace) -> str:
    if (args.checkpoint is None) != (args.key is None):
        raise Unreadable("--checkpoint and --key go together")
    if args.checkpoint and args.size is not None:
        raise Unreadable(
            "--size and --checkpoint exclude each other: the checkpoint gives the size"
        )
    checkpoint = read_checkpoint(args.checkpoint, args.key) if args.checkpoint else None
    records = [
        check_record(record, f"{path}, item {i + 1}")
        for path in args.pages
        for i, record in enumerate(_page_records(path))
    ]
    records.sort(key=lambda r: r["sequence"])
    check_chain(records)
    size = checkpoint.size if checkpoint else len(records) if args.size is None else args.size
    if size > len(records):
        raise Fails(f"the pages hold {len(records)} records, fewer than {size}")
    root = mth([bytes.fromhex(r["hash"]) for r in records[:size]])
    if checkpoint is None:
        return root.hex()
    if root != checkpoint.root:
        raise Fails(f"the first {size} records do NOT have the root checkpoint {size} signed")
    return f"the first {size} records have the root checkpoint {size} signed: {root.hex()}"


def _size(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,19}", text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a tree size")
    return int(text)


def _key(text: str) -> Key:
    try:
        return parse_key(text)
    except Unreadable as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _key_option(command: argparse.ArgumentParser, *, required: bool) -> None:
    command.add_argument(
        "--key", type=_key, action="append", required=required, help="the verifier key"
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="rfc9162.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    commands = top.add_subparsers(dest="command", required=True)

    record = commands.add_parser("record", help="recompute a record's hash")
    record.add_argument("record", metavar="RECORD.json")
    record.set_defaults(run=cmd_record)

    checkpoint = commands.add_parser("checkpoint", help="check a checkpoint's signature")
    checkpoint.add_argument("checkpoint", metavar="CHECKPOINT")
    _key_option(checkpoint, required=True)
    checkpoint.set_defaults(run=cmd_checkpoint)

    inclusion = commands.add_parser("inclusion", help="a record is in a signed tree")
    inclusion.add_argument("checkpoint", metavar="CHECKPOINT")
    inclusion.add_argument("record", metavar="RECORD.json")
    inclusion.add_argument("proof", metavar="PROOF.json")
    _key_option(inclusion, required=True)
    inclusion.set_defaults(run=cmd_inclusion)

    consistency = commands.add_parser("consistency", help="a signed tree extends another")
    consistency.add_argument("old", metavar="OLD_CHECKPOINT")
    consistency.add_argument("new", metavar="NEW_CHECKPOINT")
    consistency.add_argument("proof", metavar="PROOF.json")
    _key_option(consistency, required=True)
    consistency.set_defaults(run=cmd_consistency)

    root = commands.add_parser("root", help="recompute the records' hashes, chain and root")
    root.add_argument("pages", metavar="PAGE.json", nargs="+")
    root.add_argument("--size", type=_size, help="the root of the first N records")
    root.add_argument("--checkpoint", metavar="CHECKPOINT")
    _key_option(root, required=False)
    root.set_defaults(run=cmd_root)
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        print(args.run(args))
    except Fails as failure:
        print(failure)
        return 1
    except Unreadable as error:
        print(f"rfc9162.py: error: {error}", file=sys.stderr)
        return 2
    except RecursionError:
        print("rfc9162.py: error: an input is nested too deeply", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
