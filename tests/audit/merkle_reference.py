"""A small verifier written apart from `clientdesk.audit.merkle`: it rebuilds roots by recursing
over the RFC 9162 tree shape instead of the RFC's bit-walking loops, so a shared mistake is
unlikely. Used only by tests."""

import hashlib


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(data: bytes) -> bytes:
    return _h(b"\x00" + data)


def node(left: bytes, right: bytes) -> bytes:
    return _h(b"\x01" + left + right)


def largest_power_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return _h(b"")
    if len(leaves) == 1:
        return leaf(leaves[0])
    k = largest_power_below(len(leaves))
    return node(mth(leaves[:k]), mth(leaves[k:]))


def root_from_inclusion(index: int, size: int, leaf_data: bytes, path: list[bytes]) -> bytes | None:
    """The root the path proves, or None when the path has the wrong shape."""
    if not 0 <= index < size:
        return None
    if size == 1:
        return leaf(leaf_data) if not path else None
    if not path:
        return None
    k = largest_power_below(size)
    sibling, rest = path[-1], path[:-1]
    if index < k:
        inner = root_from_inclusion(index, k, leaf_data, rest)
        return None if inner is None else node(inner, sibling)
    inner = root_from_inclusion(index - k, size - k, leaf_data, rest)
    return None if inner is None else node(sibling, inner)


def _roots_from_consistency(
    m: int, n: int, proof: list[bytes], complete: bool, first_root: bytes
) -> tuple[bytes, bytes] | None:
    if m == n:
        if complete:
            return (first_root, first_root) if not proof else None
        return (proof[0], proof[0]) if len(proof) == 1 else None
    if not proof:
        return None
    k = largest_power_below(n)
    sibling, rest = proof[-1], proof[:-1]
    if m <= k:
        inner = _roots_from_consistency(m, k, rest, complete, first_root)
        return None if inner is None else (inner[0], node(inner[1], sibling))
    inner = _roots_from_consistency(m - k, n - k, rest, False, first_root)
    return None if inner is None else (node(sibling, inner[0]), node(sibling, inner[1]))


def consistent(first: int, second: int, first_root: bytes, second_root: bytes, proof) -> bool:
    if not 0 <= first <= second:
        return False
    if first == 0:
        return not proof
    if first == second:
        return not proof and first_root == second_root
    roots = _roots_from_consistency(first, second, list(proof), True, first_root)
    return roots == (first_root, second_root)
