"""An RFC 9162 (section 2.1) Merkle tree with inclusion and consistency proofs.

    leaf = H(0x00 ‖ entry)        node = H(0x01 ‖ left ‖ right)

A tree of n > 1 leaves splits at k, the largest power of two below n; odd
nodes are never duplicated. The hash function is a parameter (the ledger
uses SHA3-256; the tests use SHA-256 to check the published RFC 6962
vectors).

:class:`MerkleTree` keeps the hash of every *complete* subtree (2n hashes in
all), so a root, an inclusion proof or a consistency proof for any size up
to the current one costs O(log n) hash operations and lookups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

HashFn = Callable[[bytes], bytes]


def sha3_256(data: bytes) -> bytes:
    """SHA3-256, venom's ledger hash."""
    return hashlib.sha3_256(data).digest()


def sha256(data: bytes) -> bytes:
    """SHA-256, the hash of RFC 6962's test vectors."""
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only Merkle tree over leaf hashes."""

    def __init__(self, hash_fn: HashFn = sha3_256) -> None:
        self.hash_fn = hash_fn
        #: levels[h][i]: hash of the complete subtree of 2**h leaves starting at i·2**h.
        self.levels: list[list[bytes]] = [[]]

    # -- hashing --------------------------------------------------------

    def leaf_hash(self, entry: bytes) -> bytes:
        return self.hash_fn(b"\x00" + entry)

    def node_hash(self, left: bytes, right: bytes) -> bytes:
        return self.hash_fn(b"\x01" + left + right)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    # -- building -------------------------------------------------------

    def append(self, entry: bytes) -> int:
        """Append an entry; return its index."""
        return self.append_leaf_hash(self.leaf_hash(entry))

    def append_leaf_hash(self, leaf: bytes) -> int:
        """Append an already hashed leaf; return its index."""
        levels = self.levels
        index = len(levels[0])
        levels[0].append(leaf)
        # Complete every subtree this leaf closes.
        h, i, node = 0, index, leaf
        while i & 1:
            node = self.node_hash(levels[h][i - 1], node)
            h += 1
            i >>= 1
            if len(levels) == h:
                levels.append([])
            levels[h].append(node)
        return index

    def extend(self, entries: Iterable[bytes]) -> None:
        for entry in entries:
            self.append(entry)

    # -- reading --------------------------------------------------------

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end) of a tree that holds them."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self.levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return self.node_hash(self._range_hash(start, start + k), self._range_hash(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """The tree head of the first ``size`` leaves (default: all)."""
        size = self.size if size is None else size
        self._check_size(size)
        if size == 0:
            return self.hash_fn(b"")
        return self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The audit path of leaf ``index`` in the tree of ``size`` leaves."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is not in a tree of size {size}")
        proof: list[bytes] = []
        start, end = 0, size
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                proof.append(self._range_hash(start + k, end))
                end = start + k
            else:
                proof.append(self._range_hash(start, start + k))
                start += k
        proof.reverse()
        return proof

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The proof that the tree of ``old`` leaves is a prefix of the one of ``new``."""
        new = self.size if new is None else new
        self._check_size(new)
        if not 0 <= old <= new:
            raise ValueError(f"old size {old} must be between 0 and the new size {new}")
        if old in (0, new):
            return []
        proof: list[bytes] = []
        start, end, m, complete = 0, new, old, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._range_hash(start + k, end))
                end = start + k
            else:
                proof.append(self._range_hash(start, start + k))
                start += k
                m -= k
                complete = False
        if not complete:
            proof.append(self._range_hash(start, end))
        proof.reverse()
        return proof

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is not between 0 and {self.size}")


def root_of(entries: Sequence[bytes], hash_fn: HashFn = sha3_256) -> bytes:
    """MTH of ``entries`` straight from the RFC's recursive definition."""
    if not entries:
        return hash_fn(b"")
    if len(entries) == 1:
        return hash_fn(b"\x00" + entries[0])
    k = _split(len(entries))
    return hash_fn(b"\x01" + root_of(entries[:k], hash_fn) + root_of(entries[k:], hash_fn))


def verify_inclusion(
    index: int,
    size: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    root: bytes,
    hash_fn: HashFn = sha3_256,
) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` place ``leaf_hash`` at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_fn(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_fn(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old: int,
    new: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
    hash_fn: HashFn = sha3_256,
) -> bool:
    """RFC 9162 2.1.4.2: is the tree ``old_root`` of ``old`` leaves a prefix of ``new_root``?"""
    if old < 0 or old > new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hash_fn(b"\x01" + c + fr)
            sr = hash_fn(b"\x01" + c + sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_fn(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
