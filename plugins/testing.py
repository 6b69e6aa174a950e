"""Test a plugin without a NATS server: :class:`PluginHarness`.

The harness runs one plugin the way ``venom plugin run`` does, on an
in-process :class:`~venom.daemon.bus.memorybus.MemoryBus` instead of a server:
the class is validated (:func:`validate_plugin`), its config decoded from a
plain dict (:meth:`Plugin.decode_config`), the instance opened and served by
a real :class:`PluginRunner`. Each :meth:`PluginHarness.pulse` is encoded
with the real :class:`Codec`, sent as a request on ``<prefix>.pulse`` and the
answer decoded with the reply union decoder, so a reply that could not go on
the wire (NaN, an unencodable value) fails here as it would on the bus::

    async with PluginHarness(HotGuard, config={"limit": 70}, state_dir=tmp_path) as h:
        verdict = await h.pulse(features={"plant.temperature": 90.0})
        assert isinstance(verdict, GuardVerdict) and not verdict.allow

An :class:`ErrorReply` (the handler raised, or its reply could not be
encoded) raises :class:`PluginError` with the plugin's description unless
``expect_error=True``. The harness needs the asyncio event loop (with
pytest: ``@pytest.mark.anyio`` and an ``anyio_backend`` fixture returning
``"asyncio"``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import msgspec

from venom.daemon.bus import EndpointStats, MemoryBus, header
from venom.plugins.host import PluginHost, PluginRunner
from venom.plugins.registry import create_plugin, load_plugin_class
from venom.plugins.sdk import Plugin, PluginContext, validate_plugin
from venom.schemas import (
    HDR_BEAT,
    HDR_SERVICE_ERROR,
    BusError,
    Codec,
    ErrorReply,
    Mesh,
    Message,
    PluginError,
    Pulse,
    PulseContext,
    Reply,
    SchemaError,
    Subjects,
    Weights,
    beat_seed,
)

#: T_Λ of the default loop (k = 4 cores, P = 5 nodes), carried in every pulse.
DEFAULT_T_LAMBDA = 0.004 / 0.95


class PluginHarness:
    """One plugin answering pulses on an in-memory bus; an async context manager.

    ``plugin`` is a plugin class, or a name / ``module:Class`` as
    ``venom plugin run`` takes it. ``config`` is the plugin's TOML table as a
    dict (or its config Struct); ``state_dir`` defaults to a temporary
    directory removed on exit. ``seed`` is the run seed each beat's seed is
    derived from, as the arbiter does. A reply must arrive within ``timeout``
    seconds.
    """

    def __init__(
        self,
        plugin: type[Plugin[Any]] | str,
        *,
        config: Mapping[str, Any] | msgspec.Struct | None = None,
        state_dir: Path | str | None = None,
        prefix: str = "venom",
        seed: int = 0,
        timeout: float = 5.0,
        t_lambda: float = DEFAULT_T_LAMBDA,
    ) -> None:
        cls = load_plugin_class(plugin) if isinstance(plugin, str) else validate_plugin(plugin)
        self.plugin_class = cls
        if isinstance(config, cls.config_type):
            self.config: msgspec.Struct = config
        elif config is None or isinstance(config, Mapping):
            self.config = cls.decode_config(dict(config or {}))
        else:
            raise PluginError(
                f"plugin {cls.name!r}: config must be a dict or a {cls.config_type.__name__}, "
                f"not {type(config).__name__}"
            )
        self.subjects = Subjects(prefix)
        self.codec = Codec()
        self.seed = seed
        self.timeout = timeout
        self.t_lambda = t_lambda
        #: The last beat sent; :meth:`pulse` without ``beat`` sends the next one.
        self.beat = 0
        #: What the plugin published through ``context.publish``: (subject, message).
        self.published: list[tuple[str, Message]] = []
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._stack = AsyncExitStack()
        self._bus: MemoryBus | None = None
        self._runner: PluginRunner | None = None
        self._plugin: Plugin[Any] | None = None

    @property
    def name(self) -> str:
        """The plugin's name."""
        return self.plugin_class.name

    @property
    def plugin(self) -> Plugin[Any]:
        """The running plugin instance (to inspect its state)."""
        if self._plugin is None:
            raise PluginError(f"plugin {self.name!r}: the harness is not started (async with)")
        return self._plugin

    @property
    def runner(self) -> PluginRunner:
        """The :class:`PluginRunner` serving the plugin."""
        if self._runner is None:
            raise PluginError(f"plugin {self.name!r}: the harness is not started (async with)")
        return self._runner

    @property
    def bus(self) -> MemoryBus:
        """The in-memory bus the plugin answers on."""
        if self._bus is None:
            raise PluginError(f"plugin {self.name!r}: the harness is not started (async with)")
        return self._bus

    @property
    def stats(self) -> EndpointStats:
        """The pulse endpoint's counters (requests, errors, last error, timings)."""
        return self.runner.endpoint

    async def __aenter__(self) -> Self:
        stack = self._stack
        try:
            if self._state_dir is None:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="venom-harness-"))
                self._state_dir = Path(tmp)
            bus = self._bus = MemoryBus()
            stack.push_async_callback(bus.close)
            context = PluginContext(
                state_dir=self._state_dir,
                subjects=self.subjects,
                publish=self._publish,
                bus=bus,
            )
            self._plugin = create_plugin(self.plugin_class, self.config, context)
            host = PluginHost([self._plugin], bus, subjects=self.subjects, codec=self.codec)
            await stack.enter_async_context(host)
            self._runner = host.runners[0]
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _publish(self, subject: str, message: Message) -> None:
        self.published.append((subject, message))
        await self.bus.publish(subject, self.codec.encode(message))

    def make_pulse(
        self,
        *,
        beat: int | None = None,
        features: Mapping[str, float] | None = None,
        context: PulseContext | Mapping[str, Any] | None = None,
        seed: int | None = None,
        weights: Weights | None = None,
    ) -> Pulse:
        """The pulse :meth:`pulse` would send (advances the beat counter)."""
        self.beat = self.beat + 1 if beat is None else beat
        if context is None:
            ctx = PulseContext()
        elif isinstance(context, PulseContext):
            ctx = context
        else:
            ctx = PulseContext(**context)
        now = time.time()
        return Pulse(
            beat=self.beat,
            issued_at=now,
            deadline=now + self.timeout,
            t_lambda=self.t_lambda,
            seed=beat_seed(self.seed, self.beat) if seed is None else seed,
            weights=weights or Weights(),
            features={k: float(v) for k, v in (features or {}).items()},
            context=ctx,
        )

    async def pulse(
        self,
        *,
        beat: int | None = None,
        features: Mapping[str, float] | None = None,
        context: PulseContext | Mapping[str, Any] | None = None,
        seed: int | None = None,
        weights: Weights | None = None,
        expect_error: bool = False,
    ) -> Reply:
        """Send one pulse through the bus and return the plugin's decoded reply.

        ``beat`` defaults to the last beat + 1, ``seed`` to the beat's seed
        derived from the run seed, ``context`` is a :class:`PulseContext` or
        its fields as a dict. Raises :class:`PluginError` when the plugin
        answers with an :class:`ErrorReply` (unless ``expect_error``, which
        returns it and fails when the plugin answers normally), when the
        reply does not decode, or when none comes within the timeout.
        """
        bus = self.bus
        p = self.make_pulse(
            beat=beat, features=features, context=context, seed=seed, weights=weights
        )
        data = self.codec.encode(p)
        try:
            msg = await bus.request(
                self.subjects.pulse, data, timeout=self.timeout, headers={HDR_BEAT: str(p.beat)}
            )
        except BusError as exc:
            raise PluginError(
                f"plugin {self.name!r} did not answer beat {p.beat} within {self.timeout:g} s"
            ) from exc
        if not msg.data:  # the runner refused the pulse itself (NATS micro error headers)
            problem = header(msg, HDR_SERVICE_ERROR, "empty reply")
            raise PluginError(f"plugin {self.name!r}, beat {p.beat}: {problem}")
        try:
            reply = self.codec.decode_reply(msg.data)
        except SchemaError as exc:
            raise PluginError(
                f"plugin {self.name!r}, beat {p.beat}: reply does not decode: {exc}"
            ) from exc
        if isinstance(reply, ErrorReply):
            if not expect_error:
                raise PluginError(
                    f"plugin {self.name!r} failed beat {p.beat} "
                    f"(error {reply.code}): {reply.description}"
                )
        elif expect_error:
            raise PluginError(
                f"plugin {self.name!r} answered beat {p.beat} with "
                f"{type(reply).__name__}, not the expected ErrorReply"
            )
        return reply

    async def pulses(
        self,
        features: Iterable[Mapping[str, float]],
        *,
        context: PulseContext | Mapping[str, Any] | None = None,
        expect_error: bool = False,
    ) -> list[Reply]:
        """One pulse per feature dict, on consecutive beats; the replies in order."""
        return [
            await self.pulse(features=f, context=context, expect_error=expect_error)
            for f in features
        ]

    async def mesh(self, message: Mesh) -> None:
        """Publish a mesh message (anomaly, ml_weight, label) and let the plugin take it."""
        subject = f"{self.subjects.prefix}.mesh.{message.__struct_config__.tag}"
        await self.bus.publish(subject, self.codec.encode(message))
        await self.bus.flush()
