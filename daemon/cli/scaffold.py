"""``venom plugin new``: a plugin package to start from (SPEC 10).

:func:`scaffold_plugin` writes ``<dir>/venom-<name>/``: a ``pyproject.toml``
with the ``venom.plugins`` entry point, a working plugin of the chosen role
in ``src/venom_<name>/plugin.py``, a test that drives it through
:class:`venom.plugins.testing.PluginHarness` and passes as generated, and a
README saying how to test, install and run it. The templates are in
:mod:`venom.daemon.cli.templates`.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from venom.daemon.cli import templates
from venom.plugins.registry import available
from venom.plugins.sdk import NAME_RE
from venom.schemas import ConfigError

#: Roles ``venom plugin new`` has a template for (the ledger is built in).
SCAFFOLD_ROLES = ("guard", "estimator", "core", "model", "sensor")


def class_name(name: str, role: str) -> str:
    """``hot-guard`` → ``HotGuard``; the role is appended unless the name ends with it."""
    base = "".join(part[:1].upper() + part[1:] for part in name.split("-") if part)
    suffix = role.capitalize()
    if not base.endswith(suffix):
        base += suffix
    return base if base[0].isalpha() else "Plugin" + base


def render(name: str, role: str) -> dict[str, str]:
    """The package's files (relative path → text) for plugin ``name`` of ``role``."""
    description, imports, fields, body, test_imports, tests, settings = templates.ROLES[role]
    module = "venom_" + name.replace("-", "_")
    cls = class_name(name, role)
    values = {"name": name, "role": role, "module": module, "cls": cls}
    values["description"] = description
    values["Description"] = description[:1].upper() + description[1:]
    values["settings"] = "\n".join("    " + line for line in settings.splitlines())
    plugin = Template(templates.HEAD).substitute(values, imports=imports, fields=fields)
    test_imports += f"\n\nfrom {module}.plugin import {cls}"
    test_head = Template(templates.TEST_HEAD).substitute(values, imports=test_imports)
    return {
        "pyproject.toml": Template(templates.PYPROJECT).substitute(values),
        "README.md": Template(templates.README).substitute(values),
        f"src/{module}/__init__.py": f'"""venom plugin {name}: {description}."""\n',
        f"src/{module}/plugin.py": plugin + Template(body).substitute(values),
        "tests/test_plugin.py": test_head + Template(tests).substitute(values),
    }


def scaffold_plugin(
    name: str, *, directory: Path = Path("."), role: str = "guard", force: bool = False
) -> list[Path]:
    """Write the package of plugin ``name`` under ``directory``; return the files written.

    Raises :class:`ConfigError` (one line) for a bad name or role, a name an
    installed plugin already has, or an existing non-empty target without
    ``force`` (which overwrites the generated files and keeps any others).
    """
    if not NAME_RE.match(name):
        raise ConfigError(
            f"plugin name {name!r} must be lowercase letters, digits and dashes "
            "(max 63, not starting with a dash)"
        )
    if role not in templates.ROLES:
        raise ConfigError(f"role {role!r} must be one of {', '.join(SCAFFOLD_ROLES)}")
    files = render(name, role)
    installed = available().get(name)
    ours = f"venom_{name.replace('-', '_')}.plugin:{class_name(name, role)}"
    if installed is not None and installed != ours:
        raise ConfigError(f"a plugin named {name!r} is already installed ({installed})")
    root = directory / f"venom-{name}"
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} exists and is not a directory")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise ConfigError(f"{root} exists and is not empty (--force overwrites it)")
    written: list[Path] = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
