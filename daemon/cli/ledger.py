"""``venom ledger ...``: read, prove and verify the ledger's files (SPEC 6, 10).

These commands open the ledger read-only, so they are safe beside a running
ledger; they need no NATS server.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from venom.plugins.ledger.entry import parse_entry
from venom.plugins.ledger.merkle import sha3_256, verify_consistency, verify_inclusion
from venom.plugins.ledger.store import LOG_FILE, LedgerStore
from venom.plugins.ledger.verify import verify_ledger
from venom.schemas import LedgerError

HASH_NAME = "sha3-256"


def add_ledger_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``venom ledger`` and its actions."""
    ledger = sub.add_parser("ledger", parents=[common], help="read, prove and verify the ledger")
    lsub = ledger.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)

    def action(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = lsub.add_parser(name, parents=[common], help=text)
        p.add_argument("--state-dir", metavar="D", help="state directory (default ./.venom)")
        p.add_argument("--config", metavar="F", help="config file")
        return p

    action("head", "size, root and checkpoint").add_argument("--json", action="store_true")
    show = action("show", "entry N, decoded, with its trace id")
    show.add_argument("index", type=int, metavar="N")
    verify = action("verify", "recompute the chain, the tree and the checkpoint")
    verify.add_argument("--json", action="store_true")
    prove = action("prove", "inclusion proof of entry N (JSON)")
    prove.add_argument("index", type=int, metavar="N")
    prove.add_argument("--size", type=int, metavar="S", help="tree size (default: current)")
    cons = action("consistency", "consistency proof between sizes A and B (JSON)")
    cons.add_argument("old", type=int, metavar="A")
    cons.add_argument("new", type=int, metavar="B")
    check = action("check-proof", "verify a proof written by prove or consistency")
    check.add_argument("file", metavar="FILE", help="proof JSON ('-' for stdin)")
    action("export", "every entry as a JSON line {index, hash, record}")


def run_ledger_command(args: argparse.Namespace, state_dir: Path) -> int:
    """Run one ``venom ledger`` action; LedgerError on damage or bad input."""
    directory = state_dir / "plugins" / "ledger"
    cmd = args.ledger_command
    file_action = _FILE_ACTIONS.get(cmd)
    if file_action is not None:
        return file_action(args, directory)
    store = LedgerStore(directory, readonly=True)
    store_action = _STORE_ACTIONS.get(cmd)
    if store_action is None:
        raise LedgerError(f"unknown ledger action {cmd!r}")
    return store_action(args, store)


def _print_json(doc: object) -> None:
    print(json.dumps(doc, indent=2))


def _head(args: argparse.Namespace, store: LedgerStore) -> int:
    """``venom ledger head``: size, root and checkpoint."""
    cp = store.read_checkpoint()
    doc = {
        "size": store.size,
        "root": store.tree.root().hex(),
        "hash": HASH_NAME,
        "checkpoint": cp,
    }
    if args.json:
        _print_json(doc)
    else:
        print(f"size {doc['size']}\nroot {doc['root']}\nhash {HASH_NAME}")
        if cp:
            print(f"checkpoint size {cp.get('size')} root {cp.get('root')}")
    return 0


def _show(args: argparse.Namespace, store: LedgerStore) -> int:
    """``venom ledger show N``: entry N decoded, with its trace id."""
    entry = parse_entry(store.read(args.index), args.index)
    rec = msgspec.to_builtins(entry.record)
    _print_json(
        {
            "index": args.index,
            "hash": store.tree.levels[0][args.index].hex(),
            "trace_id": entry.record.trace_id,
            "span_id": entry.record.span_id,
            "prev": entry.prev,
            "seq": entry.seq,
            "record": rec,
        }
    )
    return 0


def _prove(args: argparse.Namespace, store: LedgerStore) -> int:
    """``venom ledger prove N``: the inclusion proof of entry N."""
    size = store.size if args.size is None else args.size
    try:
        proof = store.tree.inclusion_proof(args.index, size)
    except ValueError as exc:
        raise LedgerError(str(exc)) from exc
    _print_json(
        {
            "type": "inclusion",
            "hash": HASH_NAME,
            "index": args.index,
            "size": size,
            "leaf_hash": store.tree.levels[0][args.index].hex(),
            "root": store.tree.root(size).hex(),
            "proof": [p.hex() for p in proof],
        }
    )
    return 0


def _consistency(args: argparse.Namespace, store: LedgerStore) -> int:
    """``venom ledger consistency A B``: the consistency proof between sizes A and B."""
    try:
        proof = store.tree.consistency_proof(args.old, args.new)
        old_root, new_root = store.tree.root(args.old), store.tree.root(args.new)
    except ValueError as exc:
        raise LedgerError(str(exc)) from exc
    _print_json(
        {
            "type": "consistency",
            "hash": HASH_NAME,
            "old_size": args.old,
            "new_size": args.new,
            "old_root": old_root.hex(),
            "new_root": new_root.hex(),
            "proof": [p.hex() for p in proof],
        }
    )
    return 0


def _export(args: argparse.Namespace, store: LedgerStore) -> int:
    """``venom ledger export``: every entry as a JSON line {index, hash, record}."""
    out = sys.stdout
    for i in range(store.size):
        entry = parse_entry(store.read(i), i)
        out.write(
            json.dumps(
                {
                    "index": i,
                    "hash": store.tree.levels[0][i].hex(),
                    "record": msgspec.to_builtins(entry.record),
                },
                separators=(",", ":"),
            )
            + "\n"
        )
    return 0


def _run_check_proof(args: argparse.Namespace, directory: Path) -> int:
    """``venom ledger check-proof FILE``: needs no ledger."""
    return _check_proof(args.file)


def _run_verify(args: argparse.Namespace, directory: Path) -> int:
    """``venom ledger verify``: reads the files itself, not through a store."""
    return _verify(directory, args.json)


# The actions that read the ledger's directory (or nothing) themselves, and
# those that read it through a read-only store, opened before they run.
_FILE_ACTIONS: dict[str, Callable[[argparse.Namespace, Path], int]] = {
    "check-proof": _run_check_proof,
    "verify": _run_verify,
}
_STORE_ACTIONS: dict[str, Callable[[argparse.Namespace, LedgerStore], int]] = {
    "head": _head,
    "show": _show,
    "prove": _prove,
    "consistency": _consistency,
    "export": _export,
}


def _verify(directory: Path, as_json: bool) -> int:
    if not (directory / LOG_FILE).exists():
        raise LedgerError(f"no ledger in {directory}")
    tty = sys.stderr.isatty()

    def progress(done: int, pos: int) -> None:
        if tty:
            sys.stderr.write(f"\rverified {done} entries ({pos / 1e6:.1f} MB)")
            sys.stderr.flush()

    report = verify_ledger(directory, progress=progress)
    if tty:
        sys.stderr.write("\n")
    if as_json:
        print(json.dumps(report.__dict__, indent=2))
    elif report.ok:
        print(f"ok: {report.entries} entries, root {report.root}")
    if not report.ok:
        raise LedgerError(f"ledger verify failed: {report.problem}")
    return 0


class InclusionProof(msgspec.Struct, frozen=True, kw_only=True, tag="inclusion", tag_field="type"):
    """What ``venom ledger prove`` writes."""

    index: Annotated[int, Meta(ge=0)]
    size: Annotated[int, Meta(ge=1)]
    leaf_hash: str
    root: str
    proof: list[str]
    hash: str = HASH_NAME


class ConsistencyProof(
    msgspec.Struct, frozen=True, kw_only=True, tag="consistency", tag_field="type"
):
    """What ``venom ledger consistency`` writes."""

    old_size: Annotated[int, Meta(ge=0)]
    new_size: Annotated[int, Meta(ge=0)]
    old_root: str
    new_root: str
    proof: list[str]
    hash: str = HASH_NAME


Proof = InclusionProof | ConsistencyProof


def _check_proof(path: str) -> int:
    proof = _read_proof(path)
    if isinstance(proof, InclusionProof):
        ok = verify_inclusion(
            proof.index,
            proof.size,
            _digest(path, "leaf_hash", proof.leaf_hash),
            _path(path, proof.proof),
            _digest(path, "root", proof.root),
            sha3_256,
        )
        kind = "inclusion"
    else:
        ok = verify_consistency(
            proof.old_size,
            proof.new_size,
            _digest(path, "old_root", proof.old_root),
            _digest(path, "new_root", proof.new_root),
            _path(path, proof.proof),
            sha3_256,
        )
        kind = "consistency"
    if not ok:
        raise LedgerError(f"{path}: proof does NOT verify")
    print(f"valid {kind} proof")
    return 0


def _read_proof(path: str) -> Proof:
    """The proof in ``path`` ('-': stdin); LedgerError says what is wrong with it."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise LedgerError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        proof: Proof = msgspec.json.decode(data, type=Proof)
    except msgspec.DecodeError as exc:
        raise LedgerError(f"{path}: not a proof file: {exc}") from exc
    if proof.hash != HASH_NAME:
        raise LedgerError(f"{path}: unsupported hash {proof.hash!r} (this ledger uses {HASH_NAME})")
    return proof


def _digest(path: str, field: str, text: str) -> bytes:
    """A 32-byte hash written as hex; LedgerError names the field."""
    try:
        value = bytes.fromhex(text)
    except ValueError as exc:
        raise LedgerError(f"{path}: not a proof file: {field} is not hex ({exc})") from exc
    if len(value) != 32:
        raise LedgerError(
            f"{path}: not a proof file: {field} must be 64 hex digits, got {len(text)}"
        )
    return value


def _path(path: str, hashes: list[str]) -> list[bytes]:
    return [_digest(path, f"proof[{i}]", h) for i, h in enumerate(hashes)]
