"""venom's version, read once from the package metadata (``pyproject.toml``).

Everything that shows a version (the ``venom-arbiter`` micro service, the
tracer and meter scopes, the telemetry resource) takes :data:`VERSION`
from here, so a release changes one line in ``pyproject.toml``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["VERSION"]


def _installed_version() -> str:
    try:
        return version("venom")
    except PackageNotFoundError:
        # A source tree that was never installed: still a semver (ADR-32 asks for one).
        return "0.0.0+unknown"


#: The installed package's version.
VERSION = _installed_version()
