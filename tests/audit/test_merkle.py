"""RFC 9162 tree hashing and proofs: the transparency-dev/merkle reference vectors, a cross-check
against an independent recursive verifier, and proofs an attacker would forge."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clientdesk.audit import merkle
from tests.audit import merkle_reference as ref

# transparency-dev/merkle testonly: LeafInputs and the trees built from them.
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEVEL0 = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]
INCLUSION = [
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


class MemoryTree:
    """Leaves appended through CompactRange, its emitted nodes kept in a dict: the same path the
    sequencer takes to fill the node table."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.range = merkle.CompactRange()
        self.nodes: dict[tuple[int, int], bytes] = {}
        for data in leaves:
            self.nodes.update(self.range.append(data))

    def read(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]


def _leaves(n: int) -> list[bytes]:
    return [i.to_bytes(4, "big") * (i % 3) for i in range(n)]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_roots_match_the_reference_vectors(size):
    tree = MemoryTree(LEAVES[:size])
    assert merkle.tree_root(tree.read, size).hex() == ROOTS[size]
    assert tree.range.root().hex() == ROOTS[size]


def test_leaf_hashes_match_the_reference_vectors():
    assert [merkle.leaf_hash(data).hex() for data in LEAVES] == LEVEL0


@pytest.mark.parametrize(("index", "size", "want"), INCLUSION)
def test_inclusion_proofs_match_the_reference_vectors(index, size, want):
    tree = MemoryTree(LEAVES)
    proof = merkle.inclusion_proof(tree.read, index, size)
    assert [h.hex() for h in proof] == want
    root = bytes.fromhex(ROOTS[size])
    assert merkle.verify_inclusion(
        leaf=LEAVES[index], index=index, size=size, proof=proof, root=root
    )
    assert ref.root_from_inclusion(index, size, LEAVES[index], proof) == root


@pytest.mark.parametrize(("first", "second", "want"), CONSISTENCY)
def test_consistency_proofs_match_the_reference_vectors(first, second, want):
    tree = MemoryTree(LEAVES)
    proof = merkle.consistency_proof(tree.read, first, second)
    assert [h.hex() for h in proof] == want
    a, b = bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second])
    assert merkle.verify_consistency(
        first=first, second=second, first_root=a, second_root=b, proof=proof
    )
    assert ref.consistent(first, second, a, b, proof)


EDGE_SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65]


@pytest.mark.parametrize("size", EDGE_SIZES)
def test_every_proof_of_edge_sizes_checks_with_the_independent_verifier(size):
    leaves = _leaves(65)
    tree = MemoryTree(leaves)
    roots = {n: ref.mth(leaves[:n]) for n in range(size + 1)}
    assert merkle.tree_root(tree.read, size) == roots[size]
    for index in range(size):
        proof = merkle.inclusion_proof(tree.read, index, size)
        assert ref.root_from_inclusion(index, size, leaves[index], proof) == roots[size]
    for first in range(size + 1):
        proof = merkle.consistency_proof(tree.read, first, size)
        assert ref.consistent(first, size, roots[first], roots[size], proof)
        assert merkle.verify_consistency(
            first=first, second=size, first_root=roots[first], second_root=roots[size], proof=proof
        )


def test_empty_tree_has_the_empty_root_and_no_inclusion_proof():
    tree = MemoryTree([])
    assert merkle.tree_root(tree.read, 0) == merkle.EMPTY_ROOT
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(tree.read, 0, 0)
    assert not merkle.verify_inclusion(leaf=b"", index=0, size=0, proof=[], root=merkle.EMPTY_ROOT)


@pytest.mark.parametrize(("index", "size"), [(-1, 4), (4, 4), (0, 0), (9, 8)])
def test_impossible_inclusion_requests_are_refused(index, size):
    tree = MemoryTree(_leaves(8))
    with pytest.raises(merkle.ProofError):
        merkle.inclusion_proof(tree.read, index, size)


@pytest.mark.parametrize(("first", "second"), [(5, 4), (-1, 3), (3, -1)])
def test_impossible_consistency_requests_are_refused(first, second):
    tree = MemoryTree(_leaves(8))
    with pytest.raises(merkle.ProofError):
        merkle.consistency_proof(tree.read, first, second)


def test_a_proof_for_nodes_the_store_lacks_is_refused():
    tree = MemoryTree(_leaves(5))

    def load(wanted):
        return {n: tree.nodes[n] for n in wanted if n in tree.nodes}

    assert merkle.fetch_nodes(lambda read: merkle.tree_root(read, 5), load) == tree.range.root()
    with pytest.raises(merkle.ProofError, match="lacks"):
        merkle.fetch_nodes(lambda read: merkle.tree_root(read, 6), load)


def _forgeries(proof: list[bytes]) -> list[list[bytes]]:
    """What an attacker tries: drop, add, swap, flip a bit, repeat."""
    out: list[list[bytes]] = [proof[:-1], [*proof, proof[-1] if proof else bytes(32)], [bytes(32)]]
    if proof:
        out.append(proof[1:])
        flipped = bytearray(proof[0])
        flipped[0] ^= 1
        out.append([bytes(flipped), *proof[1:]])
    if len(proof) > 1:
        out.append([proof[1], proof[0], *proof[2:]])
        out.append(list(reversed(proof)))
    return [f for f in out if f != proof]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_forged_inclusion_proofs_fail_both_verifiers(size):
    leaves = _leaves(17)
    tree = MemoryTree(leaves)
    root = merkle.tree_root(tree.read, size)
    for index in range(size):
        proof = merkle.inclusion_proof(tree.read, index, size)
        for forged in _forgeries(proof):
            assert not merkle.verify_inclusion(
                leaf=leaves[index], index=index, size=size, proof=forged, root=root
            )
            assert ref.root_from_inclusion(index, size, leaves[index], forged) != root
        # The right proof, claimed for another index, size or leaf.
        for wrong_index in {index - 1, index + 1, size} - {index}:
            assert not merkle.verify_inclusion(
                leaf=leaves[index], index=wrong_index, size=size, proof=proof, root=root
            )
        # Another size may share the path's shape (index 0 of 3 and of 4 leaves): then the
        # root still binds it. Both verifiers must agree on every such claim.
        for wrong_size in {size - 1, size + 1, 2 * size} - {size}:
            ours = merkle.verify_inclusion(
                leaf=leaves[index], index=index, size=wrong_size, proof=proof, root=root
            )
            theirs = ref.root_from_inclusion(index, wrong_size, leaves[index], proof) == root
            assert ours == theirs
        assert not merkle.verify_inclusion(
            leaf=b"forged", index=index, size=size, proof=proof, root=root
        )


@pytest.mark.parametrize("second", [2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_forged_consistency_proofs_fail_both_verifiers(second):
    leaves = _leaves(17)
    tree = MemoryTree(leaves)
    roots = {n: merkle.tree_root(tree.read, n) for n in range(second + 1)}
    for first in range(1, second):
        proof = merkle.consistency_proof(tree.read, first, second)
        a, b = roots[first], roots[second]
        for forged in _forgeries(proof):
            assert not merkle.verify_consistency(
                first=first, second=second, first_root=a, second_root=b, proof=forged
            )
            assert not ref.consistent(first, second, a, b, forged)
        assert not merkle.verify_consistency(
            first=first, second=second, first_root=b, second_root=a, proof=proof
        )
        for other in {first - 1, first + 1} - {0, second}:
            assert not merkle.verify_consistency(
                first=other, second=second, first_root=a, second_root=b, proof=proof
            )
    assert merkle.verify_consistency(
        first=0, second=second, first_root=merkle.EMPTY_ROOT, second_root=roots[second], proof=[]
    )
    assert not merkle.verify_consistency(
        first=second,
        second=second,
        first_root=roots[second],
        second_root=roots[second - 1],
        proof=[],
    )


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_random_proofs_agree_with_the_independent_verifier(data):
    size = data.draw(st.integers(1, 300))
    leaves = [data.draw(st.binary(max_size=8)) for _ in range(size)]
    tree = MemoryTree(leaves)
    root = ref.mth(leaves)
    assert tree.range.root() == root == merkle.tree_root(tree.read, size)
    index = data.draw(st.integers(0, size - 1))
    proof = merkle.inclusion_proof(tree.read, index, size)
    assert ref.root_from_inclusion(index, size, leaves[index], proof) == root
    first = data.draw(st.integers(0, size))
    cproof = merkle.consistency_proof(tree.read, first, size)
    assert ref.consistent(first, size, ref.mth(leaves[:first]), root, cproof)
