"""The arbiter: the beat loop (SPEC 2).

Each beat: wait for the tick, build the :class:`Pulse`, publish it on
``<prefix>.pulse`` with the beat's reply subject, gather the replies until
all are in or the deadline passes, decide, step the PID and the genome,
publish the :class:`Decision` and the :class:`BeatRecord`, and carry the
beat's estimates into the next pulse's context.

The arbiter never imports a plugin: it sees plugins only as names on the
bus (discovery) and typed replies (schemas).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from anyio.abc import TaskStatus
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from venom.daemon.beat.aggregate import aggregate, context_after, next_context
from venom.daemon.beat.control import Control
from venom.daemon.beat.decision import decide
from venom.daemon.beat.discovery import Discovery
from venom.daemon.beat.gather import Gather
from venom.daemon.beat.genome import Genome
from venom.daemon.beat.leadership import Leadership
from venom.daemon.beat.loadwatch import LoadWatch
from venom.daemon.beat.loop import BeatLoop
from venom.daemon.beat.period import beat_period, gather_deadline
from venom.daemon.beat.pid import GenomicPid
from venom.daemon.beat.pulse import InputState
from venom.daemon.beat.scheduler import Scheduler, Tick
from venom.daemon.beat.snapshot import ArbiterSnapshot, finite, period_mode, plugin_statuses
from venom.daemon.beat.stats import BeatStats
from venom.daemon.beat.view import arbiter_gauges, arbiter_service
from venom.daemon.bus.base import Bus
from venom.daemon.bus.micro import EndpointStats
from venom.daemon.config.settings import VenomConfig
from venom.daemon.observe.metrics import BeatMetrics
from venom.daemon.observe.tracing import BeatTrace
from venom.schemas import (
    HDR_BEAT,
    HDR_TRACEPARENT,
    BeatRecord,
    BusError,
    Codec,
    Decision,
    PidState,
    Pulse,
    PulseContext,
    Reply,
    Subjects,
    VenomError,
    Weights,
    beat_seed,
)

log = logging.getLogger("venom.arbiter")

RecordSink = Callable[[BeatRecord], Awaitable[None]]


def _no_trouble() -> str:
    return ""


def _nothing() -> None:
    return None


class Arbiter(BeatLoop):
    """Runs the beat loop on a bus. Start with :meth:`run` in a task group."""

    def __init__(
        self,
        bus: Bus,
        config: VenomConfig,
        *,
        codec: Codec | None = None,
        subjects: Subjects | None = None,
        record_sink: RecordSink | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.bus = bus
        self.config = config
        self.subjects = subjects or Subjects(config.nats.prefix)
        self.codec = codec or Codec(max_bytes=config.beat.max_reply_bytes)
        self.gather = Gather(bus, self.codec, breaker_after=config.beat.breaker_after)
        self.discovery = Discovery(
            prefix=self.subjects.prefix, forget_after=3 * config.beat.discovery_interval
        )
        self.pid = GenomicPid(config.pid)
        self.genome = Genome(config.genome)
        self.inputs = InputState(self.subjects, self.codec)
        self.stats = BeatStats()
        #: Whether the beat fits the machine; says so (once) when it does not.
        self.load = LoadWatch(log)
        self.record_sink = record_sink
        self.beat = 0
        self.paused = False
        self.ready = False
        self.last_decision: Decision | None = None
        #: Why beats are held ("" when they are not): the connection or the beat stream.
        self.holding = ""
        #: Asked before each beat: a reason to hold beats ("" to go on).
        self.hold: Callable[[], str] | None = None
        #: Asked for the status: what keeps beat records from being stored ("" if none).
        self.storage: Callable[[], str] = _no_trouble
        #: Called every turn of the beat loop (watchdog, liveness).
        self.on_turn: Callable[[], None] = _nothing
        self.last_pid = PidState()
        self.period = self._compute_period()
        self.scheduler = Scheduler(self.period)
        #: What the next pulse carries from this beat (SPEC 2.3).
        self.pulse_context = PulseContext()
        #: Who leads (HA, SPEC 2.6); None: this arbiter leads alone.
        self.leadership = leadership
        #: This incarnation's epoch (its publisher's), stamped on its records; ``venom run``
        #: sets it ("" elsewhere).
        self.epoch = ""
        self._stall_limit = math.inf
        self._stopping = False
        self._wake = anyio.Event()
        #: Set when a plugin is first heard from by its reply: ask who it is now.
        self._discover_now = anyio.Event()
        self._last_start: float | None = None
        #: The beat in flight, from its issue to its end: when it started, seconds
        #: since the beat before started (the PID's dt), the gather's budget.
        self._start = 0.0
        self._dt = 0.0
        self._budget = 0.0
        self._heard_due = 0.0
        self._required = frozenset(config.plugins.required_guards)
        self._encode = self.codec.encode
        #: Keeps the pulse's bytes: the record sink puts them into the BeatRecord as they are.
        self._encode_pulse = self.codec.encode_pulse
        #: The beat's spans and ids (SPEC 7); ids are made even with tracing off.
        self.trace = BeatTrace(tracer_provider, self.subjects.pulse)
        self.metrics = (
            BeatMetrics(meter_provider, arbiter_gauges(self.snapshot))
            if meter_provider is not None
            else None
        )
        self.endpoint = EndpointStats("ctl", f"{self.subjects.prefix}.ctl.>")
        self.service = arbiter_service(self.snapshot, self.subjects.prefix, self.endpoint)

    # -- period -----------------------------------------------------------

    def _compute_period(self) -> float:
        live = bool(self.discovery.plugins)
        k, p = (self.discovery.k, self.discovery.p) if live else (self.config.beat.k, None)
        return beat_period(self.config.beat, k, p, getattr(self, "period", None))

    def deadline(self) -> float:
        """Seconds a beat gathers for."""
        return gather_deadline(self.config.beat, self.period)

    @property
    def k(self) -> int:
        return self.discovery.k if self.discovery.plugins else self.config.beat.k

    @property
    def p(self) -> int:
        return self.discovery.p if self.discovery.plugins else self.config.beat.p

    # -- lifecycle --------------------------------------------------------

    async def run(
        self, *, beats: int = 0, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run beats until :meth:`stop` (or ``beats`` beats when > 0)."""
        control = Control(
            self.snapshot,
            self,
            self.bus,
            self.subjects,
            self.codec,
            self.endpoint,
            epoch=self.leadership.epoch if self.leadership is not None else "",
        )
        await self.gather.start()
        await self.inputs.start(self.bus)
        await control.start()
        await self.service.start(self.bus)
        if self.leadership is not None:
            await self.leadership.start()
            self._show_role()
        try:
            # Start-up discovery: our subscriptions in place first, then a round
            # (two for back-to-back runs, which wait for everyone: answers can be
            # lost while other connections come and go). Whoever comes later is
            # found by the discovery loop, or by its first reply.
            await self.bus.flush()
            for _ in range(2 if self.period == 0 else 1):
                await self.refresh_plugins(max(0.25, self.config.beat.discovery_timeout))
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._discovery_loop)
                self.ready = True
                task_status.started()
                try:
                    await self._beat_loop(beats or self.config.beat.beats)
                finally:
                    self.ready = False
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                if self.leadership is not None:
                    await self.leadership.stop()
                await self.service.stop()
                await control.stop()
                await self.inputs.stop()
                await self.gather.stop()
                self.gather.breaker.flush()

    def apply_config(self, config: VenomConfig) -> None:
        """Take the live keys of ``config`` (see ``config.reload``) from the next beat."""
        self.config = config
        self.genome.config = config.genome
        self._required = frozenset(config.plugins.required_guards)

    def readiness(self) -> tuple[bool, str]:
        """(ready, why not): running, first beat closed, not holding beats."""
        if not self.ready:
            return False, "starting" if not self._stopping else "stopping"
        if self.holding:
            return False, self.holding
        if self.beat == 0:
            return False, "no beat closed yet"
        return True, ""

    def snapshot(self) -> ArbiterSnapshot:
        """The state readers see (control, gauges, micro stats, the live line)."""
        stats, estimates = self.stats, self.pulse_context.estimates
        return ArbiterSnapshot(
            prefix=self.subjects.prefix,
            beat=self.beat,
            rate=round(stats.rate(), 3),
            period=finite(self.period),
            period_mode=period_mode(self.config.beat.period),
            paused=self.paused,
            holding=self.holding,
            storage=self.storage(),
            connected=self.bus.connected,
            weights=self.genome.weights,
            pid_error=self.last_pid.error,
            pid_stable=self.last_pid.stable,
            missed_ticks=self.scheduler.missed,
            k=self.k,
            p=self.p,
            replies=stats.replies,
            late=stats.late,
            missing=stats.missing,
            errors=stats.failed + stats.rejected,
            p50_beat_s=stats.percentile(50),
            p99_beat_s=stats.percentile(99),
            plugins=plugin_statuses(self.discovery.plugins, self.gather.health),
            decisions=dict(stats.decisions),
            last_decision=self.last_decision,
            load=self.load.report(),
            ledger_size=estimates.get("ledger.size"),
            ledger_lag=estimates.get("ledger.lag"),
            live_plugins=len(self.discovery.plugins),
            **self._ha_fields(),
        )

    def _ha_fields(self) -> dict[str, Any]:
        lead = self.leadership
        if lead is None:
            return {}
        return {
            "role": lead.role,
            "epoch": lead.epoch,
            "leader": lead.leader,
            "leader_since": lead.since,
        }

    def continue_after(self, records: Sequence[BeatRecord]) -> None:
        """Continue after the stream's last ``records``: beat number, genome, PID, context."""
        if not records:
            return
        last = records[-1]
        self.beat = last.beat
        self.genome.restore(last.pulse.weights)
        self.genome.step(
            last.pid.output,
            last.decision.threat,
            last.beat,
            output_limit=self.config.pid.output_limit,
        )
        self.pid.restore([r.pid for r in records])
        self.pulse_context = context_after(
            last,
            required_guards=self._required,
            anomalies=self.inputs.take_anomalies(),
            on_telemetry=self.inputs.take_telemetry,
        )
        self.last_decision, self.last_pid = last.decision, last.pid

    def set_weights(self, weights: Weights) -> Weights:
        """Set the genome (floored and normalised); the weights in force."""
        self.genome.set(weights)
        return self.genome.weights

    def discover_soon(self) -> None:
        """Ask who is live now, not at the next discovery interval (a plugin came up)."""
        self._discover_now.set()

    async def refresh_plugins(self, timeout: float | None = None) -> None:
        """Ask the bus who is live and follow T_Λ."""
        if not self.bus.connected:
            return  # silence now says nothing about the plugins
        try:
            await self.discovery.refresh(self.bus, timeout or self.config.beat.discovery_timeout)
        except VenomError as exc:
            log.warning("discovery failed: %s", exc)
        self._follow_period()

    def _follow_period(self) -> None:
        period = self._compute_period()
        if period != self.period:
            log.info(
                "period %.3f ms -> %.3f ms (k=%d, P=%d)",
                self.period * 1e3,
                period * 1e3,
                self.k,
                self.p,
            )
            self.period = period
            self.scheduler.set_period(period)

    async def _discovery_loop(self) -> None:
        while True:
            with anyio.move_on_after(self.config.beat.discovery_interval):
                await self._discover_now.wait()
            self._discover_now = anyio.Event()
            await self.refresh_plugins()

    # -- one beat -----------------------------------------------------------

    async def run_beat(self, tick: Tick) -> BeatRecord:
        """Run one beat started by ``tick``; return its record.

        Three steps: :meth:`_issue` (the pulse, the gather opened),
        :meth:`_close` (the gather closed, the decision, PID, genome, record)
        and :meth:`_after` (discovery, stats, metrics, the trace's end). They
        are plain calls: the beat's awaits (the pulse out, the gather's wait,
        the decision and record out) stay here, in order, and the steps hand
        on what they share through the arbiter, not through new objects.
        """
        pulse = self._issue(tick)
        beat = pulse.beat
        trace = self.trace
        gather = self.gather
        try:
            await self.bus.publish(
                self.subjects.pulse,
                self._encode_pulse(pulse),
                reply=gather.reply_subject(beat),
                headers={HDR_BEAT: str(beat), HDR_TRACEPARENT: trace.traceparent},
            )
        except BusError as exc:
            trace.sent(str(exc))
            log.warning("pulse %d not sent: %s", beat, exc)
        else:
            trace.sent()
            await gather.wait(self._budget)
        record = self._close(pulse)
        if (
            time.perf_counter() - self._start > self._stall_limit
            and not await self._lead_after_stall()
        ):
            self._after(record)
            return record  # another arbiter has this beat: nothing of ours goes out
        try:
            await self.bus.publish(self.subjects.decision, self._encode(record.decision))
            if self.record_sink is not None:
                await self.record_sink(record)
        except BusError as exc:
            log.warning("beat %d not published: %s", beat, exc)
        self._after(record)
        return record

    def _issue(self, tick: Tick) -> Pulse:
        """Number and time the beat, build its pulse, open its gather."""
        beat = self.beat + 1
        self.beat = beat
        start = time.perf_counter()
        self._dt = start - self._last_start if self._last_start is not None else self.period
        self._last_start = self._start = start
        budget = self.deadline()
        if self.period > 0:
            budget = max(0.0, budget - tick.lateness)  # deadline counts from the tick
        self._budget = budget
        if self.leadership is not None:
            self._stall_limit = self.leadership.takeover_after()
        now_wall = time.time()
        self.trace.begin(beat)
        pulse = Pulse(
            beat=beat,
            issued_at=now_wall,
            deadline=now_wall + budget,
            t_lambda=self.period,
            seed=beat_seed(self.config.beat.seed, beat),
            weights=self.genome.weights,
            features=self.inputs.features(),
            context=self.pulse_context,
        )
        gather = self.gather
        gather.open(beat, gather.waiting_for(self.discovery.live()))
        return pulse

    def _close(self, pulse: Pulse) -> BeatRecord:
        """Close the gather; decide, step the PID and the genome; the beat's record."""
        beat = pulse.beat
        report, replies = self.gather.close()
        t_obs = time.perf_counter() - self._start
        decision, context = self._aggregate(beat, replies, report.missing, t_obs)
        pid_state = self.pid.update(t_obs, self._dt)
        self.genome.step(
            pid_state.output, decision.threat, beat, output_limit=self.config.pid.output_limit
        )
        trace = self.trace
        record = BeatRecord(
            beat=beat,
            pulse=pulse,
            replies=replies,
            report=report,
            decision=decision,
            pid=pid_state,
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            epoch=self.epoch,
        )
        self.pulse_context = next_context(
            decision, report, replies, context, self.inputs.take_anomalies()
        )
        self.inputs.after_beat(report, t_obs)
        self.last_decision = decision
        self.last_pid = pid_state
        return record

    def _after(self, record: BeatRecord) -> None:
        """After the beat is out: who was heard, the beat's figures, the trace's end."""
        start = self._start
        gather = self.gather
        heard = gather.heard
        if heard and (not heard <= self.discovery.plugins.keys() or start >= self._heard_due):
            # New names at once; last-seen times of known ones four times a second.
            self._heard_due = start + 0.25
            if self.discovery.heard_from(heard):
                self._follow_period()
                # Known by name only: its role and version come from $SRV.INFO.
                self.discover_soon()
            heard.clear()
        report, decision = record.report, record.decision
        duration = time.perf_counter() - start
        self.stats.record(report, decision, duration)
        self.load.beat(report, self._budget, self.scheduler.missed)
        gather.breaker.tick()
        if self.metrics is not None:
            self.metrics.beat(report, decision, duration)
        self.trace.end(decision.action, len(record.replies), len(report.missing))

    def _aggregate(
        self, beat: int, replies: dict[str, Reply], missing: list[str], t_obs: float
    ) -> tuple[Decision, dict[str, float]]:
        inputs, context = aggregate(
            beat,
            replies,
            missing=missing,
            required_guards=self._required,
            weights=self.genome.weights,
            t_obs=t_obs,
            ml_weight=self.inputs.ml_weight,
            on_telemetry=self.inputs.take_telemetry,
        )
        return decide(inputs, self.config.thresholds), context
