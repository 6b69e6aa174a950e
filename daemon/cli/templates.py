"""The files ``venom plugin new`` writes, as ``string.Template`` text per role.

``$name``, ``$cls``, ``$module`` and the role's parts are filled in by
:func:`venom.daemon.cli.scaffold.render`.
"""

from __future__ import annotations

HEAD = '''"""$name: $description."""

from __future__ import annotations

$imports


class ${cls}Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of $name: ``[plugins.settings.$name]`` in venom.toml."""

$fields

class $cls(Plugin[${cls}Config]):
    """$Description."""

    name: ClassVar[str] = "$name"
    role: ClassVar[Role] = "$role"
    version: ClassVar[str] = "0.1.0"
    config_type: ClassVar[type[${cls}Config]] = ${cls}Config
    description: ClassVar[str] = "$description"

'''

TEST_HEAD = '''"""Tests of $name through venom's plugin harness: no NATS server needed."""

from __future__ import annotations

$imports

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


'''

FEATURE = """    #: The feature to read: ``<source>.<key>`` from telemetry, or an estimate.
    feature: str = "plant.temperature"
"""

# role: (description, plugin imports, config fields, body, test imports, tests, settings)
ROLES: dict[str, tuple[str, str, str, str, str, str, str]] = {
    "guard": (
        "vetoes the beat while a feature is above its limit",
        "from typing import ClassVar\n\nimport msgspec\n"
        "from venom.plugins import GuardVerdict, Plugin, Pulse, Reply, lookup\n"
        "from venom.schemas import Role",
        FEATURE
        + """    #: Veto while the feature is above this.
    limit: float = 80.0
    #: Veto when the feature is not in the pulse (fail closed).
    veto_if_missing: bool = False
""",
        """    async def handle(self, pulse: Pulse) -> Reply:
        c = self.config
        value = lookup(pulse, c.feature)
        if value is None:
            return GuardVerdict(
                guard=self.name,
                allow=not c.veto_if_missing,
                severity="warning",
                reason=f"{c.feature} not measured",
            )
        if value > c.limit:
            return GuardVerdict(
                guard=self.name,
                allow=False,
                severity="critical",
                reason=f"{c.feature} {value:.1f} above {c.limit:g}",
                metric=value,
            )
        return GuardVerdict(guard=self.name, allow=True, metric=value)
""",
        "from pathlib import Path\n\nimport pytest\n"
        "from venom.plugins import GuardVerdict, PluginHarness, PluginValidationError",
        """async def test_allows_below_the_limit_and_vetoes_above(tmp_path: Path) -> None:
    async with PluginHarness($cls, config={"limit": 70.0}, state_dir=tmp_path) as h:
        cool, hot = await h.pulses([{"plant.temperature": 40.0}, {"plant.temperature": 90.0}])
    assert isinstance(cool, GuardVerdict)
    assert cool.allow
    assert isinstance(hot, GuardVerdict)
    assert not hot.allow
    assert hot.reason == "plant.temperature 90.0 above 70"


async def test_a_missing_feature_vetoes_only_when_configured() -> None:
    for veto_if_missing in (False, True):
        async with PluginHarness($cls, config={"veto_if_missing": veto_if_missing}) as h:
            verdict = await h.pulse(features={})
        assert isinstance(verdict, GuardVerdict)
        assert verdict.allow is not veto_if_missing


def test_config_errors_name_the_key() -> None:
    with pytest.raises(PluginValidationError, match="limit"):
        PluginHarness($cls, config={"limit": "hot"})
""",
        'feature = "plant.temperature"\nlimit = 75.0',
    ),
    "estimator": (
        "a moving average of a feature and each reading's deviation",
        "from typing import Annotated, ClassVar\n\nimport msgspec\nfrom msgspec import Meta\n"
        "from venom.plugins import EstimateReply, Plugin, PluginContext, Pulse, Reply, lookup\n"
        "from venom.schemas import Role",
        FEATURE
        + """    #: Weight of the newest reading in the average, in (0, 1].
    alpha: Annotated[float, Meta(gt=0, le=1)] = 0.2
""",
        """    def __init__(
        self, config: ${cls}Config | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.mean: float | None = None

    async def handle(self, pulse: Pulse) -> Reply:
        value = lookup(pulse, self.config.feature)
        if value is None:
            return EstimateReply(estimator=self.name)
        if self.mean is None:
            self.mean = value
        self.mean += self.config.alpha * (value - self.mean)
        return EstimateReply(
            estimator=self.name, values={"mean": self.mean, "deviation": value - self.mean}
        )
""",
        "import pytest\n"
        "from venom.plugins import EstimateReply, PluginHarness, PluginValidationError",
        """async def test_the_mean_follows_the_feature() -> None:
    temps = [{"plant.temperature": 40.0}] + [{"plant.temperature": 50.0}] * 30
    async with PluginHarness($cls, config={"alpha": 0.5}) as h:
        replies = await h.pulses(temps)
    first, last = replies[0], replies[-1]
    assert isinstance(first, EstimateReply)
    assert first.values == {"mean": 40.0, "deviation": 0.0}
    assert isinstance(last, EstimateReply)
    assert last.values["mean"] == pytest.approx(50.0)


async def test_nothing_to_report_without_the_feature() -> None:
    async with PluginHarness($cls) as h:
        reply = await h.pulse(features={})
    assert isinstance(reply, EstimateReply)
    assert reply.values == {}


def test_config_errors_name_the_key() -> None:
    with pytest.raises(PluginValidationError, match="alpha"):
        PluginHarness($cls, config={"alpha": 0})
""",
        'feature = "plant.temperature"\nalpha = 0.1',
    ),
    "core": (
        "a decision core scoring how far a feature is from its setpoint",
        "from typing import Annotated, ClassVar\n\nimport msgspec\nfrom msgspec import Meta\n"
        "from venom.plugins import CoreReply, Plugin, Pulse, Reply, lookup\n"
        "from venom.schemas import CoreName, Role",
        """    #: The core this plugin is: R urgency, B stability, E threat, O gain. Run it
    #: instead of the built-in core of that letter (the last reply of a letter wins).
    core: CoreName = "R"
"""
        + FEATURE
        + """    setpoint: float = 50.0
    #: Distance from the setpoint that scores 1.
    span: Annotated[float, Meta(gt=0)] = 30.0
""",
        """    async def handle(self, pulse: Pulse) -> Reply:
        c = self.config
        value = lookup(pulse, c.feature)
        if value is None:
            return CoreReply(core=c.core, score=0.0, notes=[f"{c.feature} not measured"])
        distance = abs(value - c.setpoint)
        return CoreReply(
            core=c.core, score=min(1.0, distance / c.span), details={"distance": distance}
        )
""",
        "import pytest\nfrom venom.plugins import CoreReply, PluginHarness, PluginValidationError",
        """async def test_the_score_grows_with_the_distance_from_the_setpoint() -> None:
    temps = [{"plant.temperature": t} for t in (50.0, 65.0, 200.0)]
    async with PluginHarness($cls, config={"core": "R"}) as h:
        replies = await h.pulses(temps)
    scores = [r.score for r in replies if isinstance(r, CoreReply) and r.core == "R"]
    assert scores == [0.0, 0.5, 1.0]


def test_config_errors_name_the_key() -> None:
    with pytest.raises(PluginValidationError, match="core"):
        PluginHarness($cls, config={"core": "X"})
""",
        'core = "R"\nfeature = "plant.temperature"\nsetpoint = 50.0',
    ),
    "model": (
        "a threat score in [0, 1]: a logistic curve over a feature",
        "import math\nfrom typing import Annotated, ClassVar\n\nimport msgspec\n"
        "from msgspec import Meta\n"
        "from venom.plugins import Plugin, Pulse, Reply, ThreatReply, lookup\n"
        "from venom.schemas import Role",
        FEATURE
        + """    #: The feature value scored 0.5.
    center: float = 75.0
    #: How sharply the threat rises around the center.
    scale: Annotated[float, Meta(gt=0)] = 5.0
    #: The model's share of the decision's threat.
    ml_weight: Annotated[float, Meta(ge=0, le=1)] = 0.12
""",
        """    async def handle(self, pulse: Pulse) -> Reply:
        c = self.config
        value = lookup(pulse, c.feature)
        if value is None:
            return ThreatReply(model=self.name, threat=0.0, ml_weight=c.ml_weight)
        z = max(-50.0, min(50.0, (value - c.center) / c.scale))  # exp() stays finite
        threat = 1.0 / (1.0 + math.exp(-z))
        return ThreatReply(model=self.name, threat=threat, ml_weight=c.ml_weight)
""",
        "import pytest\n"
        "from venom.plugins import PluginHarness, PluginValidationError, ThreatReply",
        """async def test_the_threat_rises_with_the_feature() -> None:
    temps = [{"plant.temperature": t} for t in (-1e9, 60.0, 75.0, 90.0, 1e9)]
    async with PluginHarness($cls) as h:
        replies = await h.pulses(temps)
    threats = [r.threat for r in replies if isinstance(r, ThreatReply)]
    assert threats == sorted(threats)
    assert threats[2] == 0.5
    assert 0.0 <= threats[0] < 1e-6
    assert 1.0 - 1e-6 < threats[-1] <= 1.0


def test_config_errors_name_the_key() -> None:
    with pytest.raises(PluginValidationError, match="scale"):
        PluginHarness($cls, config={"scale": -1})
""",
        'feature = "plant.temperature"\ncenter = 75.0',
    ),
    "sensor": (
        "a simulated sensor: one seeded, noisy reading per beat",
        "import random\nfrom typing import Annotated, ClassVar\n\nimport msgspec\n"
        "from msgspec import Meta\n"
        "from venom.plugins import Plugin, Pulse, Reply, Telemetry\n"
        "from venom.schemas import Role",
        """    #: The reading reaches the other plugins as the feature ``<name>.<key>``.
    key: str = "value"
    mean: float = 20.0
    noise: Annotated[float, Meta(ge=0)] = 0.5
""",
        """    async def handle(self, pulse: Pulse) -> Reply:
        c = self.config
        rng = random.Random(pulse.seed)  # the beat's seed: runs replay (SPEC 8)
        reading = c.mean + rng.gauss(0.0, c.noise)
        return Telemetry(source=self.name, values={c.key: reading}, time=pulse.issued_at)
""",
        "import pytest\nfrom venom.plugins import PluginHarness, PluginValidationError, Telemetry",
        """async def test_the_same_seed_gives_the_same_reading() -> None:
    async with PluginHarness($cls, config={"mean": 10.0}) as h:
        a = await h.pulse(seed=1)
        b = await h.pulse(seed=1)
        c = await h.pulse(seed=2)
    readings = [r.values["value"] for r in (a, b, c) if isinstance(r, Telemetry)]
    assert readings[0] == readings[1] != readings[2]
    assert abs(readings[0] - 10.0) < 5
    assert isinstance(a, Telemetry)
    assert a.source == "$name"


def test_config_errors_name_the_key() -> None:
    with pytest.raises(PluginValidationError, match="noise"):
        PluginHarness($cls, config={"noise": -1})
""",
        "mean = 20.0\nnoise = 0.5",
    ),
}

PYPROJECT = """[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "venom-$name"
version = "0.1.0"
description = "venom $role plugin: $description"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["venom"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points."venom.plugins"]
$name = "$module.plugin:$cls"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["src"]
addopts = "--strict-markers"
filterwarnings = ["error"]
"""

README = """# venom-$name

A venom $role plugin: $description.
The class is `$module.plugin.$cls`; edit its `handle` and its config Struct.

## Test

    python -m pytest

from this directory, with the Python that has venom and pytest. The tests
drive the plugin through `venom.plugins.testing.PluginHarness`: each pulse
goes over an in-memory bus with the real codec, no NATS server needed.

## Install

From the directory that holds `venom-$name/`, into the environment that
has venom (`-e` while you edit it):

    pip install -e ./venom-$name
    venom plugin list              # $name   $module.plugin:$cls

## Run

As its own process, next to a running `venom run` (any host that reaches
its NATS server):

    venom plugin run $name --nats nats://127.0.0.1:4222

or hosted by the daemon: add `"$name"` to `plugins.run` in `venom.toml`
(the list replaces the default set, so keep the plugins you want), and set
it up in its table:

    [plugins.settings.$name]
$settings
"""
