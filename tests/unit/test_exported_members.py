"""The public API is on purpose: these lists change only with intent."""

from __future__ import annotations

import subprocess
import sys

import pytest

import venom.plugins
import venom.schemas


def isort_order(names: list[str]) -> list[str]:
    """CONSTANTS, then Classes, then functions, each alphabetical (ruff RUF022)."""
    return sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))


def test_plugins_sdk_exports() -> None:
    assert venom.plugins.__all__ == isort_order(venom.plugins.__all__)
    for name in venom.plugins.__all__:
        assert hasattr(venom.plugins, name), name
    assert {"Plugin", "PluginContext", "PluginHost", "Pulse", "Reply", "validate_plugin"} <= set(
        venom.plugins.__all__
    )


def test_schemas_exports() -> None:
    assert venom.schemas.__all__ == isort_order(venom.schemas.__all__)
    for name in venom.schemas.__all__:
        assert hasattr(venom.schemas, name), name
    assert {"Pulse", "Decision", "BeatRecord", "GatherReport", "Codec", "Subjects"} <= set(
        venom.schemas.__all__
    )


def test_venom_daemon_exports_load_on_first_use() -> None:
    import venom.daemon

    assert venom.daemon.__all__ == isort_order(venom.daemon.__all__)
    for name in venom.daemon.__all__:
        assert hasattr(venom.daemon, name), name
    assert set(venom.daemon.__all__) <= set(dir(venom.daemon))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = venom.daemon.Nope  # type: ignore[attr-defined]


def test_importing_the_plugin_sdk_loads_neither_the_arbiter_nor_nats_nor_the_otel_sdk() -> None:
    """A plugin author's ``import venom.plugins`` stays light (a fresh interpreter)."""
    probe = (
        "import sys, venom.plugins\n"
        "heavy = ['nats', 'opentelemetry.sdk', 'venom.daemon.arbiter', 'venom.daemon.gather',"
        " 'venom.daemon.natsbus', 'torch']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""
