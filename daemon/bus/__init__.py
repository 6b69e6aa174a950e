"""The bus face: what the arbiter and plugins talk through (SPEC 5).

Plugins import from here, never from a module inside. base (the Bus
interface, JetStream and its pull consumer), natsbus (nats-py, the real
one) and jetstream (JetStream on nats-py), memorybus (in-process, NATS
semantics), micro (NATS micro, ADR-32), beatstream (the beat records'
stream) and streamtail (its end, and the record ids that fence it),
embedded (the private nats-server). Names load on first use, so
importing the face does not import nats-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venom.daemon.lazy import lazy_face

if TYPE_CHECKING:
    from venom.daemon.bus.base import (
        Bus,
        BusMessage,
        Handler,
        JetStream,
        LocalMessage,
        PullConsumer,
        StateCallback,
        StoredMessage,
        Subscription,
        error_headers,
        header,
        is_no_responders,
    )
    from venom.daemon.bus.beatstream import BeatPublisher, ensure_stream
    from venom.daemon.bus.embedded import EmbeddedServer
    from venom.daemon.bus.memorybus import MemoryBus, subject_matches
    from venom.daemon.bus.micro import EndpointStats, MicroService
    from venom.daemon.bus.natsbus import NatsBus, client_options
    from venom.daemon.bus.parentdeath import die_with_parent, parent_death_hook
    from venom.daemon.bus.streamtail import StreamTail, read_tail, record_id, stream_name

#: Each public name and the module that defines it.
_WHERE = {
    "Bus": "venom.daemon.bus.base",
    "BusMessage": "venom.daemon.bus.base",
    "Handler": "venom.daemon.bus.base",
    "JetStream": "venom.daemon.bus.base",
    "LocalMessage": "venom.daemon.bus.base",
    "PullConsumer": "venom.daemon.bus.base",
    "StateCallback": "venom.daemon.bus.base",
    "StoredMessage": "venom.daemon.bus.base",
    "Subscription": "venom.daemon.bus.base",
    "error_headers": "venom.daemon.bus.base",
    "header": "venom.daemon.bus.base",
    "is_no_responders": "venom.daemon.bus.base",
    "BeatPublisher": "venom.daemon.bus.beatstream",
    "ensure_stream": "venom.daemon.bus.beatstream",
    "EmbeddedServer": "venom.daemon.bus.embedded",
    "MemoryBus": "venom.daemon.bus.memorybus",
    "subject_matches": "venom.daemon.bus.memorybus",
    "EndpointStats": "venom.daemon.bus.micro",
    "MicroService": "venom.daemon.bus.micro",
    "NatsBus": "venom.daemon.bus.natsbus",
    "client_options": "venom.daemon.bus.natsbus",
    "die_with_parent": "venom.daemon.bus.parentdeath",
    "parent_death_hook": "venom.daemon.bus.parentdeath",
    "StreamTail": "venom.daemon.bus.streamtail",
    "read_tail": "venom.daemon.bus.streamtail",
    "record_id": "venom.daemon.bus.streamtail",
    "stream_name": "venom.daemon.bus.streamtail",
}

__all__ = [
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
]

__getattr__, __dir__ = lazy_face(__name__, _WHERE)
