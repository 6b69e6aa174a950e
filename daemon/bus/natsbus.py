"""The real :class:`Bus`: a nats-py connection.

Reconnects forever with backoff (SPEC 5.4); connection state changes are
reported to ``on_state`` listeners so readiness can follow the connection.
nats-py errors are converted to :class:`BusError` here (JetStream's in
:mod:`venom.daemon.bus.jetstream`).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping
from typing import Any

import anyio
import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError

from venom.daemon.bus.base import Bus, Handler, JetStream, StateCallback
from venom.daemon.bus.jetstream import NatsJetStream
from venom.daemon.config.settings import NatsConfig
from venom.daemon.observe.problems import ProblemLog
from venom.schemas import BusError, ConfigError

log = logging.getLogger("venom.bus")

#: Pending limits for busy subscriptions (the arbiter's reply inbox).
PENDING_MSGS = 512 * 1024
PENDING_BYTES = 512 * 1024 * 1024


class _NatsSubscription:
    def __init__(self, sub: Any) -> None:
        self._sub = sub

    async def unsubscribe(self) -> None:
        try:
            await self._sub.unsubscribe()
        except NatsError as exc:
            log.debug("unsubscribe failed: %s", exc)


def client_options(nats_config: NatsConfig) -> dict[str, Any]:
    """nats-py connect options for ``[nats]``: user/password, token, .creds, TLS files."""
    options: dict[str, Any] = {}
    if nats_config.user:
        options["user"] = nats_config.user
        options["password"] = nats_config.password
    if nats_config.token:
        options["token"] = nats_config.token
    if nats_config.credentials:
        _readable(nats_config.credentials, "nats.credentials")
        options["user_credentials"] = nats_config.credentials
    if nats_config.tls_ca or nats_config.tls_cert:
        options["tls"] = _tls_context(nats_config)
    return options


def _readable(path: str, key: str) -> None:
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{path} is not a readable file", key=key)


def _tls_context(cfg: NatsConfig) -> ssl.SSLContext:
    """Trust ``tls_ca`` (else the system's CAs); present ``tls_cert``/``tls_key`` if set."""
    if cfg.tls_ca:
        _readable(cfg.tls_ca, "nats.tls_ca")
    context = ssl.create_default_context(cafile=cfg.tls_ca or None)
    if cfg.tls_cert:
        _readable(cfg.tls_cert, "nats.tls_cert")
        if cfg.tls_key:
            _readable(cfg.tls_key, "nats.tls_key")
        try:
            context.load_cert_chain(cfg.tls_cert, cfg.tls_key or None)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"cannot load the client certificate: {exc}", key="nats.tls_cert"
            ) from exc
    return context


#: Seconds before the first reconnect attempt, and the most between two (SPEC 5.4).
RECONNECT_FIRST = 0.25
RECONNECT_MAX = 4.0


def _connect_options(
    url: str,
    callbacks: _Callbacks,
    *,
    name: str,
    connect_timeout: float,
    reconnect_wait: float,
    initial_attempts: int,
) -> dict[str, Any]:
    """``nats.connect`` keyword arguments for :meth:`NatsBus.connect`, less ``options``."""
    return {
        "servers": [u.strip() for u in url.split(",") if u.strip()],
        "name": name,
        "connect_timeout": int(max(1, connect_timeout)),
        "reconnect_time_wait": int(max(1, reconnect_wait)),
        "max_reconnect_attempts": max(1, initial_attempts),
        "allow_reconnect": True,
        "error_cb": callbacks.on_error,
        "disconnected_cb": callbacks.on_disconnect,
        "reconnected_cb": callbacks.on_reconnect,
    }


async def _open(
    url: str, connect_options: dict[str, Any], options: Mapping[str, Any], errors: list[str]
) -> Client:
    """Connect; a failure is a BusError with the last error nats-py reported."""
    try:
        return await nats.connect(**connect_options, **options)
    except (NatsError, OSError, TimeoutError) as exc:
        reason = errors[-1] if errors else str(exc) or type(exc).__name__
        raise BusError(f"cannot connect to NATS at {url}: {reason}") from exc


class _Callbacks:
    """nats-py's error, disconnect and reconnect callbacks for one connection.

    They exist before the connection does: ``nc`` and ``bus`` are set once the
    first connect succeeded, and ``errors`` keeps the last error for a failed one.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.errors: list[str] = []
        self.problems = ProblemLog(log, interval=10.0)
        self.nc: Client | None = None
        self.bus: NatsBus | None = None

    async def on_error(self, exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        self.errors[:] = [text]  # the last one, for a failed first connect
        if self.bus is not None and "permissions violation" in text:
            self.bus.refused = text
        nc = self.nc
        if self.bus is not None and nc is not None and nc.is_reconnecting:
            # A failed reconnect attempt: back off, 0.25 s doubling up to 4 s
            # (nats-py reads the wait before each attempt).
            wait = float(nc.options["reconnect_time_wait"])
            nc.options["reconnect_time_wait"] = min(RECONNECT_MAX, wait * 2)
        # The same error repeats at beat rate in a burst (say, the stream refusing
        # records whose predecessor is being sent again): once, then a count.
        self.problems.report("nats error", type(exc).__name__, self.name, text)

    async def on_disconnect(self) -> None:
        bus = self.bus
        if bus is not None and bus.closing:
            return
        log.warning("disconnected from NATS")
        if bus is not None:
            await bus._notify(False)

    async def on_reconnect(self) -> None:
        nc = self.nc
        if nc is not None:
            nc.options["reconnect_time_wait"] = RECONNECT_FIRST
        log.info(
            "reconnected to NATS at %s",
            nc.connected_url.netloc if nc is not None and nc.connected_url else "?",
        )
        if self.bus is not None:
            await self.bus._notify(True)


class NatsBus(Bus):
    """A :class:`Bus` over one nats-py connection. Create with :meth:`connect`."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.closing = False
        self._state_callbacks: list[StateCallback] = []
        self._jetstream: NatsJetStream | None = None

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str = "venom",
        connect_timeout: float = 5.0,
        reconnect_wait: float = 0.5,
        initial_attempts: int = 3,
        options: Mapping[str, Any] | None = None,
    ) -> NatsBus:
        """Connect to ``url`` (comma-separated for a cluster).

        The first connection is tried ``initial_attempts`` times per server, then
        BusError; once connected, a lost connection is retried forever (SPEC 5.4),
        after 0.25 s, then backing off to one attempt every 4 s.
        """
        callbacks = _Callbacks(name)
        connect_options = _connect_options(
            url,
            callbacks,
            name=name,
            connect_timeout=connect_timeout,
            reconnect_wait=reconnect_wait,
            initial_attempts=initial_attempts,
        )
        nc = await _open(url, connect_options, dict(options or {}), callbacks.errors)
        callbacks.nc = nc
        nc.options["max_reconnect_attempts"] = -1  # connected: from now on, forever
        nc.options["reconnect_time_wait"] = RECONNECT_FIRST
        bus = cls(nc)
        bus.max_payload = nc.max_payload
        callbacks.bus = bus
        return bus

    async def _notify(self, connected: bool) -> None:
        for cb in list(self._state_callbacks):
            try:
                await cb(connected)
            except Exception:
                log.exception("connection state callback failed")

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            await self.nc.publish(subject, data, reply=reply, headers=headers)  # type: ignore[arg-type]
        except NatsError as exc:
            raise BusError(f"publish on {subject} failed: {exc or type(exc).__name__}") from exc

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = ""
    ) -> _NatsSubscription:
        try:
            # nats-py's Msg is a BusMessage as it is: no wrapper on the hot path.
            sub = await self.nc.subscribe(
                subject,
                queue=queue,
                cb=handler,
                pending_msgs_limit=PENDING_MSGS,
                pending_bytes_limit=PENDING_BYTES,
            )
        except NatsError as exc:
            raise BusError(f"subscribe to {subject} failed: {exc or type(exc).__name__}") from exc
        return _NatsSubscription(sub)

    def new_inbox(self) -> str:
        return str(self.nc.new_inbox())

    async def flush(self, timeout: float = 5.0) -> None:
        try:
            await self.nc.flush(timeout=int(max(1, timeout)))
        except (NatsError, TimeoutError) as exc:
            raise BusError(f"flush failed: {exc or type(exc).__name__}") from exc

    async def close(self, timeout: float = 10.0) -> None:
        """Drain (finish what is in flight) and close; without a connection, just close.

        Shielded: a shutdown that is being cancelled (a signal during start-up)
        still closes the connection, or nats-py would go on reconnecting to a
        server that is stopped next, and keep the process from exiting.
        """
        self.closing = True
        if self.nc.is_closed:
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
            if self.nc.is_connected and await self._drain():
                return
        with anyio.CancelScope(shield=True), anyio.move_on_after(timeout):
            try:
                await self.nc.close()
            except Exception as exc:  # nats-py writing to a transport that is gone
                log.debug("close without a connection: %s", exc)

    async def _drain(self) -> bool:
        """Drain; False when it failed or the server went away meanwhile (then close).

        A server that is gone (stopped with the daemon) never answers the
        drain's flush: waiting for it would hold the process for the whole
        timeout, so the drain is given up as soon as the connection is lost.
        """
        drained = False

        async def drain(scope: anyio.CancelScope) -> None:
            nonlocal drained
            try:
                await self.nc.drain()
                drained = True
            except (NatsError, TimeoutError) as exc:
                log.warning("drain failed (%s); closing", exc or type(exc).__name__)
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain, tg.cancel_scope)
            while self.nc.is_connected:  # noqa: ASYNC110 - nats-py has no event for it
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
        return drained

    def on_state(self, callback: StateCallback) -> None:
        self._state_callbacks.append(callback)

    def jetstream(self) -> JetStream:
        if self._jetstream is None:
            self._jetstream = NatsJetStream(self.nc)
        return self._jetstream
