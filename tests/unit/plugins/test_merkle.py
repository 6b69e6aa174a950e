"""The Merkle tree against RFC 6962's published SHA-256 vectors, and properties.

Vectors: the transparency-dev/merkle test data (testonly/constants.go and
proof/verify_test.go), which are the RFC 6962 reference values.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venom.plugins.ledger.merkle import (
    MerkleTree,
    root_of,
    sha3_256,
    sha256,
    verify_consistency,
    verify_inclusion,
)

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
    bytes.fromhex(h)
    for h in [
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
]
NODES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]


def hx(*hashes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hashes]


# (leaf index 0-based, tree size, proof)
INCLUSION = [
    (
        0,
        8,
        hx(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        hx(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        hx(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (0, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        hx(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        hx(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        hx(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        hx(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]
SOME = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
EMPTY = ROOTS[0]


@pytest.fixture
def tree() -> MerkleTree:
    t = MerkleTree(sha256)
    t.extend(LEAVES)
    return t


def test_leaf_and_node_hashes_and_roots_at_every_size(tree: MerkleTree) -> None:
    for level, hashes in enumerate(NODES):
        assert [h.hex() for h in tree.levels[level]] == hashes
    for size, root in enumerate(ROOTS):
        assert tree.root(size) == root, size
        assert root_of(LEAVES[:size], sha256) == root


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_published_inclusion_proofs(
    tree: MerkleTree, index: int, size: int, proof: list[bytes]
) -> None:
    assert tree.inclusion_proof(index, size) == proof
    leaf = tree.leaf_hash(LEAVES[index])
    root = ROOTS[size]
    assert verify_inclusion(index, size, leaf, proof, root, sha256)
    bad = [
        (index - 1, size, leaf, proof, root),
        (index + 1, size, leaf, proof, root),
        (index ^ 2, size, leaf, proof, root),
        (index, size * 2, leaf, proof, root),
        (index, size // 2, leaf, proof, root),
        (index, size, b"WrongLeaf", proof, root),
        (index, size, leaf, proof, EMPTY),
        (index, size, leaf, proof, SOME),
        (index, size, leaf, [*proof, b""], root),
        (index, size, leaf, [*proof, root], root),
        (index, size, leaf, [b"", *proof], root),
        (index, size, leaf, [root, *proof], root),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        bad.append((index, size, leaf, flipped, root))
    if proof:
        bad.append((index, size, leaf, proof[:-1], root))
    if len(proof) > 1:
        bad.append((index, size, leaf, [proof[0], SOME, *proof[1:]], root))
    for args in bad:
        if (
            args[0] == index
            and args[1] == size
            and args[3] == proof
            and args[2] == leaf
            and args[4] == root
        ):
            continue  # a "corruption" that changes nothing (e.g. 0 ^ 2 = 2 in size 3)
        assert not verify_inclusion(*args, hash_fn=sha256), args


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_published_consistency_proofs(
    tree: MerkleTree, old: int, new: int, proof: list[bytes]
) -> None:
    assert tree.consistency_proof(old, new) == proof
    r1, r2 = ROOTS[old], ROOTS[new]
    assert verify_consistency(old, new, r1, r2, proof, sha256)
    if not proof:
        return
    bad = [
        (old - 1, new, r1, r2, proof),
        (old + 1, new, r1, r2, proof),
        (old ^ 2, new, r1, r2, proof),
        (old, new * 2, r1, r2, proof),
        (old, new // 2, r1, r2, proof),
        (old, new, b"WrongRoot", r2, proof),
        (old, new, r1, b"WrongRoot", proof),
        (old, new, r2, r1, proof),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*proof, b""]),
        (old, new, r1, r2, [*proof, r1]),
        (old, new, r1, r2, [*proof, r2]),
        (old, new, r1, r2, [b"", *proof]),
        (old, new, r1, r2, [r1, *proof]),
        (old, new, r1, r2, [r2, *proof]),
        (old, new, r1, r2, [proof[0], *proof]),
        (old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        bad.append((old, new, r1, r2, flipped))
    for args in bad:
        assert not verify_consistency(*args, hash_fn=sha256), args[:2]


def test_trivial_consistency_cases() -> None:
    r1, r2 = b"don't care 1", b"don't care 2"
    assert not verify_consistency(0, 0, r1, r2, [], sha256)
    assert not verify_consistency(1, 1, r1, r2, [], sha256)
    assert verify_consistency(0, 0, r1, r1, [], sha256)
    assert verify_consistency(0, 1, r1, r2, [], sha256)
    assert not verify_consistency(1, 0, r1, r2, [], sha256)
    assert not verify_consistency(2, 1, r1, r2, [], sha256)
    assert not verify_consistency(1, 2, r1, r2, [], sha256)
    assert not verify_consistency(0, 1, EMPTY, EMPTY, [EMPTY], sha256)
    assert not verify_consistency(1, 1, EMPTY, EMPTY, [EMPTY], sha256)


def test_no_odd_node_duplication_and_domain_separation() -> None:
    t = MerkleTree(sha256)
    t.extend([b"a", b"b", b"c"])
    la, lb, lc = (hashlib.sha256(b"\x00" + x).digest() for x in (b"a", b"b", b"c"))
    ab = hashlib.sha256(b"\x01" + la + lb).digest()
    assert t.root() == hashlib.sha256(b"\x01" + ab + lc).digest()
    assert (
        t.root()
        != hashlib.sha256(b"\x01" + ab + hashlib.sha256(b"\x01" + lc + lc).digest()).digest()
    )
    # A one-leaf tree's root is the leaf hash with the 0x00 prefix, not the raw hash.
    one = MerkleTree(sha256)
    one.append(b"a")
    assert one.root() == la != hashlib.sha256(b"a").digest()


def test_default_hash_is_sha3_256() -> None:
    t = MerkleTree()
    t.append(b"x")
    assert t.root() == hashlib.sha3_256(b"\x00x").digest() == sha3_256(b"\x00x")


def test_bad_arguments_are_refused(tree: MerkleTree) -> None:
    with pytest.raises(ValueError, match="leaf index 8"):
        tree.inclusion_proof(8, 8)
    with pytest.raises(ValueError, match="tree size 9"):
        tree.root(9)
    with pytest.raises(ValueError, match="old size 5"):
        tree.consistency_proof(5, 3)


def flip_bit(data: bytes, bit: int) -> bytes:
    i = (bit // 8) % len(data)
    return data[:i] + bytes([data[i] ^ (1 << (bit % 8))]) + data[i + 1 :]


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1))
def test_every_proof_verifies_and_every_bit_flip_fails(size: int, seed: int) -> None:
    rng = random.Random(seed)
    entries = [rng.randbytes(rng.randrange(0, 40)) for _ in range(size)]
    t = MerkleTree()
    t.extend(entries)
    root = t.root()
    for index in {0, size - 1, rng.randrange(size)}:
        proof = t.inclusion_proof(index)
        leaf = t.leaf_hash(entries[index])
        assert verify_inclusion(index, size, leaf, proof, root)
        if proof:
            j = rng.randrange(len(proof))
            broken = [*proof[:j], flip_bit(proof[j], rng.randrange(256)), *proof[j + 1 :]]
            assert not verify_inclusion(index, size, leaf, broken, root)
        assert not verify_inclusion(index, size, leaf, proof, flip_bit(root, rng.randrange(256)))
        other = t.leaf_hash(flip_bit(entries[index] or b"\x00", rng.randrange(8 * 40)))
        assert not verify_inclusion(index, size, other, proof, root)
    old = rng.randrange(1, size + 1)
    old_root = t.root(old)
    proof = t.consistency_proof(old)
    assert verify_consistency(old, size, old_root, root, proof)
    assert not verify_consistency(old, size, flip_bit(old_root, rng.randrange(256)), root, proof)
    if proof:
        j = rng.randrange(len(proof))
        broken = [*proof[:j], flip_bit(proof[j], rng.randrange(256)), *proof[j + 1 :]]
        assert not verify_consistency(old, size, old_root, root, broken)
    assert t.root() == root_of(entries)
