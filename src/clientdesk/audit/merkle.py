"""RFC 9162 Merkle tree hashing, proofs and their verification, independent of storage.

A tree is read through a `NodeReader`: the hash of the perfect subtree at (level, index), which
covers leaves [index * 2**level, (index + 1) * 2**level). Algorithms ask for nodes in an order
that does not depend on their values, so `fetch_nodes` can first record which nodes an algorithm
needs, load them in one query, then run it again for real.
"""

import hashlib
from collections.abc import Callable, Iterable
from typing import TypeVar

Node = tuple[int, int]  # (level, index)
NodeReader = Callable[[int, int], bytes]
T = TypeVar("T")

EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof was asked for sizes or indexes the tree cannot prove."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def subtree_root(read: NodeReader, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range the RFC's recursion produces (start is a multiple of the
    largest power of two below end - start, or the range is itself a perfect subtree)."""
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        return read(size.bit_length() - 1, start // size)
    k = _split(size)
    return node_hash(subtree_root(read, start, start + k), subtree_root(read, start + k, end))


def tree_root(read: NodeReader, size: int) -> bytes:
    if size < 0:
        raise ProofError("tree size must not be negative")
    return EMPTY_ROOT if size == 0 else subtree_root(read, 0, size)


def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    path: list[bytes] = []
    start, end = 0, size
    # Walk down from the root; the RFC's recursion appends siblings bottom-up, so reverse.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_root(read, start + k, end))
            end = start + k
        else:
            path.append(subtree_root(read, start, start + k))
            start = start + k
    path.reverse()
    return path


def consistency_proof(read: NodeReader, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second]) of RFC 9162 section 2.1.4.1; empty when first is 0 or equal."""
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == 0 or first == second:
        return []
    proof: list[bytes] = []
    start, end, m, complete = 0, second, first, True
    while True:
        size = end - start
        if m == size:
            if not complete:
                proof.append(subtree_root(read, start, end))
            break
        k = _split(size)
        if m <= k:
            proof.append(subtree_root(read, start + k, end))
            end = start + k
        else:
            proof.append(subtree_root(read, start, start + k))
            start, m, complete = start + k, m - k, False
    proof.reverse()
    return proof


def fetch_nodes(algorithm: Callable[[NodeReader], T], load: Callable[[set[Node]], dict]) -> T:
    """Run `algorithm` with the nodes it needs loaded in one call of `load`."""
    wanted: set[Node] = set()

    def record(level: int, index: int) -> bytes:
        wanted.add((level, index))
        return bytes(32)

    algorithm(record)
    nodes = load(wanted) if wanted else {}
    missing = wanted - nodes.keys()
    if missing:
        raise ProofError(f"the tree store lacks {len(missing)} node(s), e.g. {min(missing)}")
    return algorithm(lambda level, index: nodes[(level, index)])


class CompactRange:
    """The right edge of a growing tree: one perfect subtree per set bit of its size.

    `append` returns every perfect subtree the new leaf completes, as ((level, index), hash), so
    a store can keep them and later answer any proof without reading leaves."""

    def __init__(self, size: int = 0, peaks: Iterable[bytes] = ()) -> None:
        self.size = size
        self.peaks = list(peaks)  # highest level first, as the set bits of size
        if len(self.peaks) != bin(size).count("1"):
            raise ValueError("a compact range needs one hash per set bit of its size")

    @staticmethod
    def peak_nodes(size: int) -> list[Node]:
        nodes, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size & (1 << level):
                nodes.append((level, start >> level))
                start += 1 << level
        return nodes

    def append(self, leaf: bytes) -> list[tuple[Node, bytes]]:
        return self.append_hash(leaf_hash(leaf))

    def append_hash(self, value: bytes) -> list[tuple[Node, bytes]]:
        """Append a leaf given by its leaf hash."""
        index = self.size
        made = [((0, index), value)]
        level = 0
        while index & 1:
            value = node_hash(self.peaks.pop(), value)
            index >>= 1
            level += 1
            made.append(((level, index), value))
        self.peaks.append(value)
        self.size += 1
        return made

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        value = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            value = node_hash(peak, value)
        return value


def verify_inclusion(
    *, leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2, for the hash of a leaf's data (`leaf` is the data itself)."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2, with the RFC 6962 conventions for the trivial cases: from an
    empty tree or to the same size the proof is empty (and equal sizes need equal roots)."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
