"""The house rules of ../shared/LAYOUT.md, read from the source (an AST check).

Layers, from the top: ``cli``, ``bench`` → ``service`` → ``beat``,
``plugins`` → ``bus`` → ``observe`` → ``config`` → ``schemas``. A module
imports only from its own layer or the layers below; ``beat`` and
``plugins`` do not import each other; plugins see the daemon only through
the faces ``venom.daemon.bus`` and ``venom.daemon.observe``; nats-py is
imported only where the bus talks to NATS (and by the raw baseline of
``venom bench``, which measures nats-py itself); and no import cycle, not
even one behind ``TYPE_CHECKING`` or inside a function.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"venom.daemon": ROOT / "daemon", "venom.plugins": ROOT / "plugins"}
PACKAGES["venom.schemas"] = ROOT / "schemas"

#: Rank of each layer: a module may import a rank <= its own (siblings share a rank).
RANK = {
    "cli": 6,
    "bench": 6,
    "service": 5,
    "beat": 4,
    "plugins": 4,
    "bus": 3,
    "observe": 2,
    "config": 1,
    "schemas": 0,
}
#: Layers of one rank that must not import each other.
STRANGERS = {("beat", "plugins"), ("plugins", "beat")}
FACES = {"venom.daemon.bus", "venom.daemon.observe"}
NATS_MODULES = {
    "venom.daemon.bus.natsbus",
    "venom.daemon.bus.jetstream",
    "venom.daemon.bench.loop",
}


def modules() -> dict[str, Path]:
    """Every module of the three packages by dotted name."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports(name: str, path: Path, known: Mapping[str, Path]) -> Iterator[str]:
    """What ``name`` imports, anywhere in the file (modules, or the package a name is from)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in known else base


def layer(module: str) -> str | None:
    """The layer of a venom module; None for the package roots (``venom.daemon``, __main__)."""
    parts = module.split(".")
    if parts[:2] == ["venom", "plugins"]:
        return "plugins"
    if parts[:2] == ["venom", "schemas"]:
        return "schemas"
    if parts[:2] == ["venom", "daemon"] and len(parts) > 2 and parts[2] in RANK:
        return parts[2]
    return None


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def layer_breaches(edges: Mapping[str, set[str]]) -> list[str]:
    out = []
    for module, deps in sorted(edges.items()):
        here = layer(module)
        for dep in sorted(deps):
            there = layer(dep)
            if here is None or there is None:
                continue
            if RANK[there] > RANK[here] or (here, there) in STRANGERS:
                out.append(f"{module} ({here}) imports {dep} ({there})")
    return out


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in edges.get(node, ()):
            if dep not in edges:
                continue
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_each_layer_imports_only_the_layers_below() -> None:
    assert layer_breaches(graph()) == []


def test_there_is_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_plugins_see_the_daemon_only_through_the_faces() -> None:
    edges = graph()
    reach = sorted(
        f"{module} imports {dep}"
        for module, deps in edges.items()
        if layer(module) == "plugins"
        for dep in deps
        if dep.startswith("venom.daemon") and dep not in FACES
    )
    assert reach == []


def test_only_the_bus_imports_nats_py() -> None:
    edges = graph()
    users = sorted(
        module
        for module, deps in edges.items()
        if any(dep == "nats" or dep.startswith("nats.") for dep in deps)
    )
    assert set(users) <= NATS_MODULES, users
    assert "venom.daemon.bus.natsbus" in users


#: Modules of the daemon's root, outside the layers: the package face, the
#: ``python -m venom.daemon`` entry, and the lazy-face helper every face uses.
ROOTS = {"venom.daemon", "venom.daemon.__main__", "venom.daemon.lazy"}


def test_every_daemon_module_has_a_layer() -> None:
    outside = [m for m in modules() if m.startswith("venom.daemon") and layer(m) is None]
    assert sorted(outside) == sorted(ROOTS)


def test_the_lazy_face_helper_imports_nothing_of_venom() -> None:
    """Every layer's face imports it: it must sit below them all."""
    deps = graph()["venom.daemon.lazy"]
    assert [d for d in deps if d.startswith("venom")] == []


# The checks themselves: they must see what they are for.


def test_the_cycle_check_finds_a_cycle() -> None:
    edges = {
        "venom.daemon.beat.arbiter": {"venom.daemon.beat.control"},
        "venom.daemon.beat.control": {"venom.daemon.beat.view"},
        "venom.daemon.beat.view": {"venom.daemon.beat.arbiter"},
        "venom.daemon.beat.pid": set(),
    }
    assert cycles(edges) == [
        ["venom.daemon.beat.arbiter", "venom.daemon.beat.control", "venom.daemon.beat.view"]
    ]


@pytest.mark.parametrize(
    ("module", "dep"),
    [
        ("venom.daemon.bus.natsbus", "venom.daemon.service.run"),
        ("venom.daemon.beat.arbiter", "venom.plugins.sdk"),
        ("venom.plugins.sdk", "venom.daemon.beat.arbiter"),
        ("venom.schemas.codec", "venom.daemon.config.settings"),
    ],
)
def test_the_layer_check_finds_an_upward_import(module: str, dep: str) -> None:
    assert layer_breaches({module: {dep}}) == [
        f"{module} ({layer(module)}) imports {dep} ({layer(dep)})"
    ]


def test_the_import_reader_sees_imports_behind_type_checking(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from venom.daemon.beat.arbiter import Arbiter\n"
        "def f():\n    from venom.daemon.bus import natsbus\n"
    )
    known = {"venom.daemon.bus.natsbus": source}
    assert set(imports("venom.daemon.beat.x", source, known)) >= {
        "venom.daemon.beat.arbiter",
        "venom.daemon.bus.natsbus",
    }
