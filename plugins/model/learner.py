"""The learner of entropy-model: torch trains the network, plain Python scores with it.

:mod:`venom.plugins.model.entropy_model` imports this module when the plugin
is built, not when its class is loaded, so a process that only needs to know
the plugin (the arbiter placing it, ``venom run`` checking its settings, the
registry listing it) never pays for torch. This is the only module that
imports torch.

Why inference is not in torch: the network is 9 inputs, 16 tanh units and a
sigmoid, scored once per beat on one vector. At that size torch's per-call
overhead is the whole cost: a no-grad forward with its standardiser was
~250 µs a beat on the (slow) machine measured, plus ~12-40 µs to build the
input tensor, against ~25 µs for the same arithmetic on Python floats. So:

- **training** stays in torch: autograd and plain SGD on ``torch.nn``
  parameters, one step per mini-batch (every ``batch`` beats), exactly as
  before; the inputs it learns from are standardised with the same float64
  arithmetic and cast to float32 as before, so the weights follow the same
  trajectory, step for step;
- after each step (and after a checkpoint is restored) the weights are copied
  out of torch into Python lists (:class:`Weights`), and **inference** runs on
  those: the same network in float64 on float32 weights, within ~1e-6 of
  torch's float32 forward (a unit test holds it to that). The standardiser
  (Welford mean/variance per input) is Python floats too.

Plain Python rather than numpy: numpy's matrix product is ~10 µs faster a
beat, but it goes to BLAS, whose summation order may change with the build,
the CPU and even the data's alignment; Python's sums run in index order, so
for a seed a run scores alike wherever it runs (tanh and exp aside, which
are the C library's). numpy without BLAS (multiply, then sum) saves ~4 µs.
"""

from __future__ import annotations

import logging
import math
import operator
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

# One intra-op thread, and no OpenMP workers spinning between beats: the
# model is tiny, and idle OpenMP threads busy-wait (measured: 1.7 ms of CPU
# per beat with the default pool, 0.5 ms with one thread). Set before torch
# loads its OpenMP runtime; an explicit OMP_NUM_THREADS wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import torch.nn.functional as F

log = logging.getLogger("venom.model")

#: A raw input vector (Python floats, all finite) and its label.
Sample = tuple[list[float], int]


class ThreatNet(torch.nn.Module):
    def __init__(self, inputs: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(inputs, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
        )
        # torch's default init, U(±1/√fan_in), drawn from our own generator: the
        # global RNG stays untouched without torch.manual_seed or fork_rng, whose
        # first call imports torch._dynamo (seconds of start-up for nothing).
        with torch.no_grad():
            for layer in self.layers:
                if isinstance(layer, torch.nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)

    def linears(self) -> tuple[torch.nn.Linear, torch.nn.Linear]:
        """The hidden layer and the output layer."""
        first, _, last = self.layers
        assert isinstance(first, torch.nn.Linear)
        assert isinstance(last, torch.nn.Linear)
        return first, last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The Sequential's operations, called directly: the same arithmetic
        # without three module dispatches (the Sequential stays for the
        # checkpoint's keys).
        first, last = self.linears()
        hidden = torch.tanh(F.linear(x, first.weight, first.bias))
        return torch.sigmoid(F.linear(hidden, last.weight, last.bias)).squeeze(-1)


class Weights(NamedTuple):
    """The network's parameters as Python floats, for inference off torch."""

    w1: list[list[float]]  # hidden × inputs
    b1: list[float]
    w2: list[float]  # hidden
    b2: float

    @classmethod
    def of(cls, net: ThreatNet) -> Weights:
        first, last = net.linears()
        with torch.no_grad():
            return cls(
                first.weight.tolist(),
                first.bias.tolist(),
                last.weight[0].tolist(),
                float(last.bias[0]),
            )

    def forward(self, x: Sequence[float]) -> float:
        """sigmoid(w2 · tanh(w1 x + b1) + b2), in float64, each sum in index order."""
        tanh, mul = math.tanh, operator.mul
        hidden = [tanh(sum(map(mul, row, x), b)) for row, b in zip(self.w1, self.b1, strict=True)]
        z = sum(map(mul, self.w2, hidden), self.b2)
        if z >= 0.0:  # a sigmoid that cannot overflow math.exp
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)


class ThreatLearner:
    """A 2-layer MLP on standardised inputs, trained by plain SGD in torch; thread-safe.

    Every method that touches the weights or the standardiser takes the lock:
    the plugin scores and learns on the event loop while a checkpoint may be
    written from a worker thread.
    """

    def __init__(
        self, inputs: int, hidden: int, learning_rate: float, seed: int, features: Sequence[str]
    ) -> None:
        torch.set_num_threads(1)
        self.inputs = inputs
        self.features = list(features)
        self.net = ThreatNet(inputs, hidden, torch.Generator().manual_seed(seed))
        # Plain SGD by hand: torch.optim's first optimizer imports torch._dynamo,
        # about 4 s of a plugin process's start here, for one subtraction.
        self.params = list(self.net.parameters())
        self.learning_rate = learning_rate
        self.weights = Weights.of(self.net)
        # Welford's running mean and sum of squared deviations, per input.
        self.mean = [0.0] * inputs
        self.m2 = [0.0] * inputs
        self.count = 0
        self.updates = 0
        self._lock = threading.Lock()

    @staticmethod
    def raw(values: Sequence[float]) -> list[float]:
        """A raw input vector (non-finite values become 0)."""
        isfinite = math.isfinite
        return [v if isfinite(v) else 0.0 for v in values]

    #: The name from when raw vectors were torch tensors.
    tensor = raw

    def _standardise(self, raw: Sequence[float], learn: bool) -> list[float]:
        """(raw − mean) / std per input, clamped to ±10; folds ``raw`` in first if ``learn``.

        The float64 operations, in the order, that the torch version did, so
        training sees the very same inputs.
        """
        mean, m2 = self.mean, self.m2
        if learn:  # Welford, per input
            self.count += 1
            count = self.count
            for i, v in enumerate(raw):
                delta = v - mean[i]
                mean[i] += delta / count
                m2[i] += delta * (v - mean[i])
        n = max(1, self.count - 1)
        sqrt = math.sqrt
        out = []
        for v, mu, s in zip(raw, mean, m2, strict=True):
            var = s / n
            z = (v - mu) / sqrt(var if var > 1e-12 else 1e-12)
            out.append(-10.0 if z < -10.0 else 10.0 if z > 10.0 else z)
        return out

    def score(self, raw: Sequence[float]) -> float:
        """Threat in [0, 1] for one raw input vector (no learning)."""
        with self._lock:
            return self.weights.forward(self._standardise(raw, learn=False))

    def infer(self, raw: Sequence[float]) -> float:
        """Threat of ``raw``, folding it into the standardiser."""
        with self._lock:
            return self.weights.forward(self._standardise(raw, learn=True))

    def train_batch(self, batch: list[Sample]) -> float:
        """One SGD step (torch autograd) on a mini-batch of (input, label); the mean loss.

        Then the new weights are copied out for :meth:`infer`.
        """
        with self._lock:
            x = torch.tensor(
                [self._standardise(raw, learn=False) for raw, _ in batch], dtype=torch.float32
            )
            y = torch.tensor([float(label) for _, label in batch])
            for p in self.params:
                p.grad = None
            loss = F.binary_cross_entropy(self.net(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            with torch.no_grad():
                for p in self.params:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-self.learning_rate)
            self.weights = Weights.of(self.net)
            self.updates += len(batch)
            return float(loss.detach())

    def torch_score(self, raw: Sequence[float]) -> float:
        """What torch's own float32 forward makes of ``raw`` (no learning): a cross-check."""
        with self._lock, torch.no_grad():
            x = torch.tensor(self._standardise(raw, learn=False), dtype=torch.float32)
            return float(self.net(x))

    def save(self, path: Path) -> None:
        """Write weights and standardiser (atomic replace)."""
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(
                {
                    "net": self.net.state_dict(),
                    # float64 tensors, as ever: checkpoints from before read alike.
                    "mean": torch.tensor(self.mean, dtype=torch.float64),
                    "m2": torch.tensor(self.m2, dtype=torch.float64),
                    "count": self.count,
                    "updates": self.updates,
                    "features": self.features,
                },
                tmp,
            )
            tmp.replace(path)

    def load(self, path: Path) -> None:
        """Restore what :meth:`save` wrote; refuses a checkpoint of other features."""
        with self._lock:
            state = torch.load(path, weights_only=True)
            if state["features"] != self.features:
                raise ValueError(f"{path} was trained on other features")
            self.net.load_state_dict(state["net"])  # plain SGD keeps no state of its own
            self.weights = Weights.of(self.net)
            self.mean = [float(v) for v in state["mean"].tolist()]
            self.m2 = [float(v) for v in state["m2"].tolist()]
            self.count, self.updates = int(state["count"]), int(state["updates"])
        log.info("entropy-model restored from %s (%d updates)", path, self.updates)
