"""The arbiter's metrics (SPEC 7), on a meter provider passed in.

Per beat: the beat duration (histogram), the decision (counter by action),
vetoes (counter by guard), late and missing replies (counters by plugin);
the counters are totals kept here and read when collected (OTel's own
counters cost ~19 µs an add), the histogram is OTel's.
Read when scraped, from the arbiter's own state (no work per beat):
missed ticks, ledger size and lag, the PID error, the period, the live
plugin count, and whether the beat is kept (the last 10 s window).
Attribute sets are built once per value and reused.

In Prometheus (``[telemetry] prometheus = true``) they read as
``venom_beat_duration_seconds_bucket``, ``venom_decisions_total{venom_decision=...}``,
``venom_missed_ticks_total``, ``venom_ledger_size``, ``venom_pid_error`` ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from venom.daemon.config.version import VERSION
from venom.schemas import Decision, GatherReport

#: Bucket bounds of the beat duration, seconds: 0.25 ms ... 1 s.
BEAT_BUCKETS = (
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

Attrs = dict[str, str]


class _Cached:
    """``{key: value}`` attribute dicts, one per value, made once."""

    __slots__ = ("_key", "_sets")

    def __init__(self, key: str) -> None:
        self._key = key
        self._sets: dict[str, Attrs] = {}

    def __call__(self, value: str) -> Attrs:
        attrs = self._sets.get(value)
        if attrs is None:
            attrs = self._sets[value] = {self._key: value}
        return attrs


class _Totals:
    """Running totals by one attribute's value, observed as a monotonic counter."""

    __slots__ = ("_attrs", "_counts")

    def __init__(self, attrs: _Cached) -> None:
        self._attrs = attrs
        self._counts: dict[str, int] = {}

    def add(self, value: str, n: int = 1) -> None:
        counts = self._counts
        counts[value] = counts.get(value, 0) + n

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        # A copy: a scrape runs on the exporter's thread while beats go on.
        return [Observation(n, self._attrs(v)) for v, n in self._counts.copy().items()]


class Gauges:
    """Where the observable instruments read from (the arbiter fills it in)."""

    def __init__(self) -> None:
        self.missed_ticks: Callable[[], int] = lambda: 0
        self.ledger_size: Callable[[], float | None] = lambda: None
        self.ledger_lag: Callable[[], float | None] = lambda: None
        self.pid_error: Callable[[], float] = lambda: 0.0
        self.period: Callable[[], float] = lambda: 0.0
        self.live_plugins: Callable[[], int] = lambda: 0
        self.beat_kept: Callable[[], int] = lambda: 1
        self.missed_ticks_pct: Callable[[], float] = lambda: 0.0
        self.missing_replies_pct: Callable[[], float] = lambda: 0.0


class BeatMetrics:
    """Instruments of the beat loop on ``provider``'s meter ``venom``."""

    def __init__(self, provider: MeterProvider, gauges: Gauges) -> None:
        meter = provider.get_meter("venom", VERSION)
        self.gauges = gauges
        self._action = _Cached("venom.decision")
        self._guard = _Cached("venom.guard")
        self._plugin = _Cached("venom.plugin")
        self._duration = meter.create_histogram(
            "venom.beat.duration",
            unit="s",
            description="Time from the tick to the decision and record, per beat",
            explicit_bucket_boundaries_advisory=BEAT_BUCKETS,
        )
        # Counted here and read when collected (observable counters): an OTel
        # counter's add() costs ~19 µs of CPU, several per beat under load.
        self._decisions = _Totals(self._action)
        self._vetoes = _Totals(self._guard)
        self._late = _Totals(self._plugin)
        self._missing = _Totals(self._plugin)
        meter.create_observable_counter(
            "venom.decisions", [self._decisions.observe], description="Decisions by action"
        )
        meter.create_observable_counter(
            "venom.vetoes", [self._vetoes.observe], description="Vetoes by guard"
        )
        meter.create_observable_counter(
            "venom.replies.late",
            [self._late.observe],
            description="Replies that came after their beat closed",
        )
        meter.create_observable_counter(
            "venom.replies.missing",
            [self._missing.observe],
            description="Expected replies not in by the deadline",
        )
        meter.create_observable_counter(
            "venom.missed_ticks",
            [self._observe(gauges.missed_ticks)],
            description="Ticks skipped because the previous beat overran",
        )
        gauge_table: list[tuple[str, Callable[[], float | int | None], str, str]] = [
            ("venom.ledger.size", gauges.ledger_size, "", "Entries in the ledger (its last reply)"),
            ("venom.ledger.lag", gauges.ledger_lag, "", "Beats decided but not yet in the ledger"),
            (
                "venom.pid.error",
                gauges.pid_error,
                "s",
                "PID error dT = T_obs - T_threshold of the last beat",
            ),
            ("venom.period", gauges.period, "s", "The beat period T_Lambda in force"),
            ("venom.plugins.live", gauges.live_plugins, "", "Plugins discovery sees"),
            (
                "venom.beat.kept",
                gauges.beat_kept,
                "",
                "1 while missed ticks and missing replies stay under 1 % (last 10 s)",
            ),
            (
                "venom.ticks.missed.percent",
                gauges.missed_ticks_pct,
                "%",
                "Ticks missed, of all ticks, over the last 10 s window",
            ),
            (
                "venom.replies.missing.percent",
                gauges.missing_replies_pct,
                "%",
                "Replies missing, of all expected, over the last 10 s window",
            ),
        ]
        for name, read, unit, description in gauge_table:
            meter.create_observable_gauge(
                name, [self._observe(read)], unit=unit, description=description
            )

    @staticmethod
    def _observe(
        read: Callable[[], float | int | None],
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            value = read()
            return [] if value is None else [Observation(value)]

        return callback

    def beat(self, report: GatherReport, decision: Decision, duration: float) -> None:
        """Count one finished beat."""
        self._duration.record(duration)
        self._decisions.add(decision.action)
        if decision.vetoes:
            for guard in decision.vetoes:
                self._vetoes.add(guard)
        if report.missing:
            for name in report.missing:
                self._missing.add(name)
        if report.late:
            for name, n in report.late.items():
                self._late.add(name, n)
