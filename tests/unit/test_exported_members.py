"""The public API is on purpose: these lists change only with intent."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

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


#: Every face of the daemon and what it offers; a change here is a change of API.
FACES = {
    "venom.daemon": [
        "Arbiter",
        "Bus",
        "BusMessage",
        "MemoryBus",
        "NatsBus",
        "Subscription",
        "VenomConfig",
    ],
    "venom.daemon.beat": [
        "Arbiter",
        "ArbiterCommands",
        "ArbiterSnapshot",
        "BeatLoop",
        "BeatStats",
        "BreakerLog",
        "Control",
        "DecisionInputs",
        "Discovery",
        "Gather",
        "Genome",
        "GenomicPid",
        "InputState",
        "Leadership",
        "LivePlugin",
        "LoadWatch",
        "PluginHealth",
        "RecordSink",
        "Scheduler",
        "Tick",
        "arbiter_gauges",
        "arbiter_service",
        "beat_period",
        "decide",
        "gather_deadline",
        "t_lambda",
    ],
    "venom.daemon.bench": [
        "bench_daemon",
        "bench_plugins",
        "bench_scenario",
        "bench_startup",
        "run_bench",
        "run_ledger_bench",
    ],
    "venom.daemon.bus": [
        "BeatPublisher",
        "Bus",
        "BusMessage",
        "EmbeddedServer",
        "EndpointStats",
        "Handler",
        "JetStream",
        "LocalMessage",
        "MemoryBus",
        "MicroService",
        "NatsBus",
        "PullConsumer",
        "StateCallback",
        "StoredMessage",
        "StreamTail",
        "Subscription",
        "client_options",
        "die_with_parent",
        "ensure_stream",
        "error_headers",
        "header",
        "is_no_responders",
        "parent_death_hook",
        "read_tail",
        "record_id",
        "stream_name",
        "subject_matches",
    ],
    "venom.daemon.cli": [
        "build_parser",
        "fetch_status",
        "list_plugins",
        "run_ledger_command",
        "scaffold_plugin",
        "tail",
    ],
    "venom.daemon.config": [
        "DEFAULT_PATH",
        "DEFAULT_STATE_DIR",
        "VERSION",
        "BeatConfig",
        "EmbeddedConfig",
        "GenomeConfig",
        "HealthConfig",
        "NatsConfig",
        "PidConfig",
        "PluginsConfig",
        "RunConfig",
        "TelemetryConfig",
        "Thresholds",
        "VenomConfig",
        "dump_default_config",
        "live_config",
        "load_config",
        "reload_config",
        "resolve_state_dir",
    ],
    "venom.daemon.observe": [
        "SYSTEM",
        "BeatMetrics",
        "BeatTrace",
        "ConsumerTrace",
        "Gauges",
        "ProblemLog",
        "TelemetryProviders",
        "end_span",
        "format_traceparent",
        "get_tracer",
        "parse_traceparent",
        "percentile",
        "remote_parent",
        "setup_logging",
        "write_stderr",
    ],
    "venom.daemon.service": [
        "HealthServer",
        "Notifier",
        "PluginProcesses",
        "Process",
        "ServiceState",
        "Simulation",
        "StateLock",
        "build_plugins",
        "check_plugins",
        "check_start",
        "place_plugins",
        "run_daemon",
        "run_plugins",
    ],
}


@pytest.mark.parametrize("face", sorted(FACES))
def test_each_daemon_face_offers_what_it_says(face: str) -> None:
    module = importlib.import_module(face)
    assert module.__all__ == FACES[face]
    assert module.__all__ == isort_order(module.__all__)
    assert set(module.__all__) <= set(dir(module))
    for name in module.__all__:
        value = getattr(module, name)
        # A name that is also a submodule would be replaced by it on import.
        assert not isinstance(value, types.ModuleType), f"{face}.{name} is a module"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = module.Nope


def test_every_daemon_subpackage_has_a_pinned_face() -> None:
    import venom.daemon

    folders = {
        f"venom.daemon.{p.name}"
        for p in Path(venom.daemon.__file__).parent.iterdir()
        if (p / "__init__.py").exists()
    }
    assert folders | {"venom.daemon"} == set(FACES)


def loaded_after(code: str, modules: list[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``."""
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {modules!r} if m in sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return out.stdout.split()


def test_importing_the_plugin_sdk_loads_neither_the_beat_nor_nats_nor_the_otel_sdk() -> None:
    """A plugin author's ``import venom.plugins`` stays light, reaching the two faces only."""
    heavy = ["nats", "opentelemetry.sdk", "venom.daemon.beat", "venom.daemon.service"]
    heavy += ["venom.daemon.bus.natsbus", "venom.daemon.bus.jetstream", "torch"]
    assert loaded_after("import venom.plugins", heavy) == []
    faces = ["venom.daemon.bus", "venom.daemon.observe"]
    assert loaded_after("import venom.plugins", faces) == faces


def test_venom_help_loads_neither_the_arbiter_nor_nats() -> None:
    code = (
        "import contextlib, io\n"
        "from venom.daemon.cli.main import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])"
    )
    heavy = ["nats", "venom.daemon.beat.arbiter", "opentelemetry.sdk", "torch"]
    assert loaded_after(code, heavy) == []
