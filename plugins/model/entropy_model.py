"""entropy-model: a small torch model of the threat, learned online (SPEC 3, model).

Input: the pulse's features (a fixed, configured list; absent ones are 0),
each standardised by a running mean/variance, plus the E core's anomaly
count from the previous beat. Output: threat in [0, 1] (a 2-layer MLP with a
sigmoid). It learns online from the ground-truth labels the plant publishes
on ``<prefix>.mesh.label``: the features seen at beat n are paired with the
label of beat n and learnt in mini-batches of ``batch`` labelled beats (one
SGD step each), in beat order: the mini-batch that is complete when beat n
is scored (labels of beats up to n − ``label_lag``) is learnt after beat n's
reply has gone out and before beat n+1 is scored, so what the model knows
when it scores a beat does not depend on message timing, and no reply waits
for a training step.

- deterministic: weights initialised from ``seed``; same pulses and labels
  give the same scores;
- checkpointed: weights, and standardiser are saved to
  ``<state>/plugins/entropy-model/model.pt`` on close and every
  ``checkpoint_every`` updates, and restored on open;
- trained by torch, scored without it: each SGD step is torch autograd; the
  weights are then copied out, and every beat is scored in plain Python from
  that copy (:mod:`~venom.plugins.model.learner` says why: torch's per-call
  overhead was most of a beat's cost on a network this small);
- on the event loop: scoring a beat costs ~25-50 µs and an SGD step (one
  beat in ``batch``) ~0.5-1.1 ms on a slow machine, while the hop to a
  worker thread that used to carry both cost ~110 µs a beat by itself
  (anyio's queue and the GIL hand-over); only checkpoints are written from a
  worker thread. The step runs in :meth:`after_reply`, once the host has
  sent the beat's replies, so the model shares a process with the other
  plugins (the default) without making their batch late;
- ``ml_weight`` follows ``<prefix>.mesh.ml_weight`` and is echoed in every
  reply.

torch lives in :mod:`venom.plugins.model.learner`, imported when the plugin is
built: loading this class (to place it, check its settings, list it) costs
nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar

import anyio
import msgspec
from msgspec import Meta

from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import Label, Mesh, MlWeight, Pulse, Reply, Role, ThreatReply

if TYPE_CHECKING:
    from venom.plugins.model.learner import Sample


DEFAULT_FEATURES = (
    "plant.temperature",
    "plant.jitter",
    "plant.coherence",
    "plant.ber",
    "plant.throughput",
    "plant.y0",
    "plant.y1",
    "plant.y2",
)


class ModelConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    features: tuple[str, ...] = DEFAULT_FEATURES
    hidden: Annotated[int, Meta(ge=1, le=1024)] = 16
    learning_rate: Annotated[float, Meta(gt=0)] = 0.05
    seed: int = 0
    ml_weight: Annotated[float, Meta(ge=0, le=1)] = 0.12
    checkpoint_every: Annotated[int, Meta(ge=1)] = 500
    pending_limit: Annotated[int, Meta(ge=1)] = 4096
    #: At beat n the model trains on the labels of beats up to n − label_lag
    #: that have arrived, in beat order, so what it has learnt when it scores
    #: a beat does not depend on message timing (SPEC 8).
    label_lag: Annotated[int, Meta(ge=1)] = 2
    #: Labelled beats are learnt in mini-batches of this many (one SGD step
    #: each): the same data at a fraction of the cost per beat.
    batch: Annotated[int, Meta(ge=1, le=4096)] = 8


class EntropyModel(Plugin[ModelConfig]):
    """Online-trained threat score from the features and the anomaly count."""

    name: ClassVar[str] = "entropy-model"
    role: ClassVar[Role] = "model"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[ModelConfig]] = ModelConfig
    description: ClassVar[str] = "torch threat model, trained online from the plant's labels"
    mesh: ClassVar[tuple[str, ...]] = ("label", "ml_weight")

    def __init__(
        self, config: ModelConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        c = self.config
        from venom.plugins.model.learner import ThreatLearner  # torch: only now

        self.learner = ThreatLearner(
            len(c.features) + 1, c.hidden, c.learning_rate, c.seed, c.features
        )
        self.ml_weight = c.ml_weight
        self.pending: OrderedDict[int, list[float]] = OrderedDict()
        self.labels: dict[int, int] = {}
        #: The mini-batch that came due at the last beat: learnt after its reply.
        self._deferred: list[Sample] = []

    @property
    def updates(self) -> int:
        """Labelled beats learnt so far."""
        return self.learner.updates

    @property
    def checkpoint_path(self) -> Path:
        return self.context.state_dir / "model.pt"

    async def open(self) -> None:
        if self.checkpoint_path.exists():
            await anyio.to_thread.run_sync(self.load)

    async def close(self) -> None:
        self.learn_deferred()
        await anyio.to_thread.run_sync(self.save)

    def save(self) -> None:
        """Write weights and standardiser to the checkpoint; a failed write keeps the old one.

        A full disk at shutdown is one error line, not a traceback: the model
        goes on from the checkpoint before (it only learns less).
        """
        try:
            self.learner.save(self.checkpoint_path)
        except (OSError, RuntimeError) as exc:  # torch wraps ENOSPC in a RuntimeError
            self.checkpoint_path.with_suffix(".tmp").unlink(missing_ok=True)
            self.log.error(
                "entropy-model checkpoint not written to %s (the one before stays): %s",
                self.checkpoint_path,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )

    def load(self) -> None:
        self.learner.load(self.checkpoint_path)

    def vector(self, pulse: Pulse) -> list[float]:
        """Raw input: the configured features (0 when absent) and the anomaly count."""
        get = pulse.features.get
        values = [get(f, 0.0) for f in self.config.features]
        values.append(pulse.context.estimates.get("entropy-core.anomalies", 0.0))
        return self.learner.raw(values)

    def score(self, raw: list[float]) -> float:
        """Threat in [0, 1] for one raw input vector (no learning)."""
        return self.learner.score(raw)

    def due(self, beat: int) -> list[Sample]:
        """The (input, label) pairs to learn before scoring ``beat``, in beat order.

        Empty until a full mini-batch of labelled beats up to ``beat − label_lag``
        is there.
        """
        if len(self.labels) < self.config.batch:  # most beats: not even a batch in sight
            return []
        upto = beat - self.config.label_lag
        ready = sorted(b for b in self.labels if b <= upto)
        if len(ready) < self.config.batch:
            return []
        batch = [(self.pending.pop(b), self.labels[b]) for b in ready if b in self.pending]
        for b in ready:
            del self.labels[b]
        return batch

    async def handle(self, pulse: Pulse) -> Reply:
        self.learn_deferred()  # the last beat's mini-batch, if after_reply has not run
        raw = self.vector(pulse)
        self._deferred = self.due(pulse.beat)
        self.pending[pulse.beat] = raw
        limit = self.config.pending_limit
        while len(self.pending) > limit:
            self.pending.popitem(last=False)
        while len(self.labels) > limit:
            self.labels.pop(next(iter(self.labels)))
        return ThreatReply(
            model=self.name, threat=self.learner.infer(raw), ml_weight=self.ml_weight
        )

    async def after_reply(self, pulse: Pulse) -> None:
        """Learn the mini-batch due at this beat (one SGD step), and checkpoint now and then."""
        before = self.updates
        self.learn_deferred()
        every = self.config.checkpoint_every
        if self.updates // every != before // every:
            await anyio.to_thread.run_sync(self.save)

    def learn_deferred(self) -> None:
        """One SGD step on the mini-batch that came due at the last beat scored, if any."""
        batch, self._deferred = self._deferred, []
        if batch:
            self.learner.train_batch(batch)

    async def on_mesh(self, message: Mesh) -> None:
        if isinstance(message, MlWeight):
            if 0.0 <= message.value <= 1.0:
                self.ml_weight = message.value
            return
        if isinstance(message, Label) and message.beat in self.pending:
            self.labels[message.beat] = message.label
