"""venom.plugins.testing: plugins driven through the real wire path, in memory."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import anyio
import msgspec
import pytest

from venom.plugins import (
    ErrorReply,
    EstimateReply,
    GuardVerdict,
    NoConfig,
    Plugin,
    PluginError,
    PluginHarness,
    PluginValidationError,
    Pulse,
    Reply,
)
from venom.plugins.guards.thermal import ThermalConfig, ThermalGuard
from venom.schemas import Label, Role, Telemetry, beat_seed

pytestmark = pytest.mark.anyio


class Seen(Plugin[NoConfig]):
    """Echoes what it got; fails, hangs or returns bad values on request."""

    name: ClassVar[str] = "seen"
    role: ClassVar[Role] = "estimator"
    version: ClassVar[str] = "1.0.0"
    mesh: ClassVar[tuple[str, ...]] = ("label",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pulses: list[Pulse] = []
        self.labels: list[Label] = []
        self.release = anyio.Event()

    async def handle(self, pulse: Pulse) -> Reply:
        self.pulses.append(pulse)
        mode = pulse.features.get("mode", 0.0)
        if mode == 1.0:
            raise RuntimeError("sensor on fire")
        if mode == 2.0:
            return EstimateReply(estimator=self.name, values={"x": math.nan})
        if mode == 3.0:
            return EstimateReply(estimator=self.name, values={"x": object()})  # type: ignore[dict-item]
        if mode == 4.0:
            await self.release.wait()
        await self.context.publish(
            self.context.subjects.telemetry("seen"), Telemetry(source="seen", values={"n": 1.0})
        )
        return EstimateReply(
            estimator=self.name, values={"beat": float(pulse.beat), "threat": pulse.context.threat}
        )

    async def on_mesh(self, message: Any) -> None:
        self.labels.append(message)


async def test_thermal_vetoes_above_its_limit(tmp_path: Path) -> None:
    config = {"limit": 80.0, "max_rise": 0.0}
    async with PluginHarness(ThermalGuard, config=config, state_dir=tmp_path) as h:
        cool = await h.pulse(features={"plant.temperature": 40.0})
        hot = await h.pulse(features={"plant.temperature": 95.0})
    assert isinstance(cool, GuardVerdict)
    assert cool.allow
    assert cool.guard == "thermal"
    assert isinstance(hot, GuardVerdict)
    assert not hot.allow
    assert "above limit 80" in hot.reason
    assert hot.blocks == ["OPTIMIZE"]
    assert hot.recommend == "high"


async def test_thermal_flags_a_fast_rise_long_before_the_limit() -> None:
    temps = [{"plant.temperature": 30.0 + 1.5 * i} for i in range(12)]
    async with PluginHarness("thermal") as h:  # by entry-point name, as `venom plugin run`
        replies = await h.pulses(temps)
        assert h.stats.num_requests == 12
        assert h.stats.num_errors == 0
        assert h.beat == 12
    verdicts = [r for r in replies if isinstance(r, GuardVerdict)]
    assert len(verdicts) == 12
    assert all(v.allow for v in verdicts[:9])
    assert not verdicts[-1].allow
    assert "heating at 1.50/beat" in verdicts[-1].reason


async def test_a_config_struct_is_taken_as_it_is() -> None:
    async with PluginHarness(
        ThermalGuard, config=ThermalConfig(low=40.0, medium=50.0, high=50.0, limit=50.0)
    ) as h:
        verdict = await h.pulse(features={"plant.temperature": 55.0})
    assert isinstance(verdict, GuardVerdict)
    assert not verdict.allow


async def test_config_errors_surface_as_in_production() -> None:
    with pytest.raises(PluginValidationError, match=r"'thermal': invalid config: .*limitt"):
        PluginHarness(ThermalGuard, config={"limitt": 80})
    with pytest.raises(PluginValidationError, match=r"Expected `float`.*\$\.limit"):
        PluginHarness(ThermalGuard, config={"limit": "hot"})
    with pytest.raises(PluginValidationError, match=r"\$\.horizon"):
        PluginHarness(ThermalGuard, config={"horizon": 0})
    with pytest.raises(PluginError, match="config must be a dict or a ThermalConfig"):
        PluginHarness(ThermalGuard, config=NoConfig())


async def test_a_constructor_that_refuses_its_config_is_a_plugin_error() -> None:
    harness = PluginHarness(ThermalGuard, config={"low": 90.0})
    with pytest.raises(PluginError, match=r"'thermal': invalid config: medium: .*low <="):
        async with harness:
            pass


async def test_a_malformed_class_is_refused_by_validation() -> None:
    class Bad(Plugin[NoConfig]):
        name: ClassVar[str] = "bad"
        role: ClassVar[Role] = "guard"
        version: ClassVar[str] = "one"

        async def handle(self, pulse: Pulse) -> Reply:
            return GuardVerdict(guard=self.name, allow=True)

    with pytest.raises(PluginValidationError, match="'bad': version 'one' is not semantic"):
        PluginHarness(Bad)
    with pytest.raises(PluginError, match="no plugin named 'nope' is installed"):
        PluginHarness("nope")


async def test_beats_seeds_and_context_travel_the_wire() -> None:
    async with PluginHarness(Seen, seed=7) as h:
        first = await h.pulse(features={"a": 1})
        second = await h.pulse(context={"threat": 0.5, "decision": "ALERT"})
        jumped = await h.pulse(beat=100, seed=42)
        after = await h.pulse()
        seen = h.plugin.pulses  # type: ignore[attr-defined]
    assert [p.beat for p in seen] == [1, 2, 100, 101]
    assert seen[0].seed == beat_seed(7, 1)
    assert seen[0].features == {"a": 1.0}
    assert seen[1].context.decision == "ALERT"
    assert seen[2].seed == 42
    assert isinstance(first, EstimateReply)
    assert first.values["beat"] == 1.0
    assert isinstance(second, EstimateReply)
    assert second.values["threat"] == 0.5
    assert isinstance(jumped, EstimateReply)
    assert jumped.values["beat"] == 100.0
    assert isinstance(after, EstimateReply)
    assert after.values["beat"] == 101.0


async def test_a_bad_context_is_refused_like_a_malformed_pulse() -> None:
    async with PluginHarness(Seen) as h:
        with pytest.raises(TypeError, match="nonsense"):
            await h.pulse(context={"nonsense": 1})
        with pytest.raises(PluginError, match=r"'seen', beat 2: malformed pulse: .*decision"):
            await h.pulse(context={"decision": "PANIC"})
        assert h.runner.rejected == 1


async def test_an_error_reply_raises_with_its_description() -> None:
    async with PluginHarness(Seen) as h:
        with pytest.raises(
            PluginError, match=r"'seen' failed beat 1 \(error 500\): RuntimeError: sensor on fire"
        ):
            await h.pulse(features={"mode": 1})
        error = await h.pulse(features={"mode": 1}, expect_error=True)
        assert isinstance(error, ErrorReply)
        assert error.description == "RuntimeError: sensor on fire"
        with pytest.raises(PluginError, match="EstimateReply, not the expected ErrorReply"):
            await h.pulse(expect_error=True)
        assert h.stats.num_requests == 3
        assert h.stats.num_errors == 2
        assert h.stats.last_error == "RuntimeError: sensor on fire"


async def test_replies_that_cannot_go_on_the_wire_fail_as_on_the_bus() -> None:
    async with PluginHarness(Seen) as h:
        with pytest.raises(PluginError, match=r"non-finite float at \$\.values\.x"):
            await h.pulse(features={"mode": 2})
        with pytest.raises(PluginError, match="cannot encode EstimateReply"):
            await h.pulse(features={"mode": 3})


async def test_a_plugin_that_does_not_answer_times_out() -> None:
    async with PluginHarness(Seen, timeout=0.2) as h:
        with anyio.fail_after(5), pytest.raises(PluginError, match="did not answer beat 1 within"):
            await h.pulse(features={"mode": 4})
        # Exit waits for a handler still running, as `venom plugin run` does on SIGTERM.
        h.plugin.release.set()  # type: ignore[attr-defined]


async def test_publish_and_mesh_reach_the_bus_and_the_plugin(tmp_path: Path) -> None:
    async with PluginHarness(Seen, prefix="lab", state_dir=tmp_path) as h:
        assert h.plugin.context.state_dir == tmp_path
        await h.pulse()
        assert [s for s, _ in h.published] == ["lab.telemetry.seen"]
        await h.mesh(Label(beat=1, label=1, kind="spike"))
        assert h.plugin.labels == [Label(beat=1, label=1, kind="spike")]  # type: ignore[attr-defined]


async def test_the_harness_must_be_started_and_cleans_up() -> None:
    h = PluginHarness(Seen)
    with pytest.raises(PluginError, match="not started"):
        await h.pulse()
    async with h:
        state_dir = h.plugin.context.state_dir
        assert state_dir.is_dir()
    assert not state_dir.exists()


def test_unknown_config_fields_are_named() -> None:
    with pytest.raises(PluginValidationError) as info:
        PluginHarness(ThermalGuard, config={"signal": "x", "windw": 3})
    assert info.value.plugin == "thermal"
    assert "windw" in str(info.value)
    assert isinstance(info.value.__cause__, msgspec.ValidationError)
