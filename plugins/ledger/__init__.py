"""The ledger: an RFC 9162-style Merkle log of beat records (SPEC 6)."""

from venom.plugins.ledger.merkle import (
    MerkleTree,
    root_of,
    sha3_256,
    sha256,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "MerkleTree",
    "root_of",
    "sha3_256",
    "sha256",
    "verify_consistency",
    "verify_inclusion",
]
