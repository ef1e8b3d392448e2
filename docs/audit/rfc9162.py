#!/usr/bin/env python3
"""Check Clientdesk ledger evidence with nothing but the Python standard library.

  rfc9162.py checkpoint FILE                  print origin, tree size and root (hex)
  rfc9162.py root RECORDS.json [--size N]     RFC 9162 root over the records' hashes
  rfc9162.py inclusion CHECKPOINT RECORD.json PROOF.json
  rfc9162.py consistency OLD_CHECKPOINT NEW_CHECKPOINT PROOF.json

RECORDS.json / RECORD.json are what GET /api/v1/audit/records returns (a page, or one item of
its "results"); PROOF.json what the proof endpoints return. Leaves are the records' `hash`
values as 32 raw bytes, in `sequence` order (CONTRACT.md). The checkpoint's signature is checked
separately, with openssl (docs/AUDIT.md). Exit 0 when the evidence holds, 1 when it does not.
"""

import base64
import hashlib
import json
import sys


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


def load(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_checkpoint(path: str) -> tuple[str, int, bytes]:
    with open(path, encoding="utf-8") as f:
        body = f.read().split("\n\n", 1)[0]
    origin, size, root = body.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


def inclusion_root(index: int, size: int, leaf_data: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
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


def main(argv: list[str]) -> int:
    command, *args = argv
    if command == "checkpoint":
        origin, size, root = read_checkpoint(args[0])
        print(f"origin {origin}\ntree_size {size}\nroot {root.hex()}")
        return 0
    if command == "root":
        page = load(args[0])
        records = sorted(page.get("results", page), key=lambda r: r["sequence"])
        if [r["sequence"] for r in records] != list(range(1, len(records) + 1)):
            print("records are not the gapless sequence 1..N")
            return 1
        size = int(args[2]) if args[1:2] == ["--size"] else len(records)
        print(mth([bytes.fromhex(r["hash"]) for r in records[:size]]).hex())
        return 0
    if command == "inclusion":
        _, size, root = read_checkpoint(args[0])
        record, proof = load(args[1]), load(args[2])
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        ok = (
            proof["tree_size"] == size
            and proof["leaf_index"] == record["sequence"] - 1
            and inclusion_root(proof["leaf_index"], size, bytes.fromhex(record["hash"]), hashes)
            == root
        )
        verdict = "IS" if ok else "is NOT"
        print(f"record #{record['sequence']} {verdict} in the checkpointed tree of {size}")
        return 0 if ok else 1
    if command == "consistency":
        _, first, old = read_checkpoint(args[0])
        _, second, new = read_checkpoint(args[1])
        proof = load(args[2])
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        ok = proof["first"] == first and proof["second"] == second
        ok = ok and consistent(first, second, old, new, hashes)
        print(f"checkpoint {second} {'extends' if ok else 'does NOT extend'} checkpoint {first}")
        return 0 if ok else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
