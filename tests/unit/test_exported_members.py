"""The public API is on purpose: these lists change only with intent."""

from __future__ import annotations

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
