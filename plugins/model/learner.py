"""The torch half of entropy-model: the network, its standardiser, SGD and checkpoints.

:mod:`venom.plugins.model.entropy_model` imports this module when the plugin
is built, not when its class is loaded, so a process that only needs to know
the plugin (the arbiter placing it, ``venom run`` checking its settings, the
registry listing it) never pays for torch. This is the only module that
imports torch.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

# One intra-op thread, and no OpenMP workers spinning between beats: the
# model is tiny, and idle OpenMP threads busy-wait (measured: 1.7 ms of CPU
# per beat with the default pool, 0.5 ms with one thread). Set before torch
# loads its OpenMP runtime; an explicit OMP_NUM_THREADS wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

log = logging.getLogger("venom.model")

Sample = tuple[torch.Tensor, int]


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layers(x)).squeeze(-1)


class ThreatLearner:
    """A 2-layer MLP on standardised inputs, trained by plain SGD; thread-safe.

    Every method that touches the weights takes the lock: the plugin calls
    them from a worker thread while the event loop may save a checkpoint.
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
        self.mean = torch.zeros(inputs, dtype=torch.float64)
        self.m2 = torch.zeros(inputs, dtype=torch.float64)
        self.count = 0
        self.updates = 0
        self._lock = threading.Lock()

    @staticmethod
    def tensor(values: list[float]) -> torch.Tensor:
        """A raw input vector (non-finite values become 0)."""
        return torch.tensor([v if math.isfinite(v) else 0.0 for v in values], dtype=torch.float64)

    def _standardise(self, raw: torch.Tensor, learn: bool) -> torch.Tensor:
        if learn:  # Welford, per input
            self.count += 1
            delta = raw - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (raw - self.mean)
        var = self.m2 / max(1, self.count - 1)
        std = torch.sqrt(torch.clamp(var, min=1e-12))
        return ((raw - self.mean) / std).clamp(-10, 10).to(torch.float32)

    def score(self, raw: torch.Tensor) -> float:
        """Threat in [0, 1] for one raw input vector (no learning)."""
        with self._lock, torch.no_grad():
            return float(self.net(self._standardise(raw, learn=False)))

    def infer(self, raw: torch.Tensor) -> float:
        """Threat of ``raw``, folding it into the standardiser."""
        with self._lock, torch.no_grad():
            return float(self.net(self._standardise(raw, learn=True)))

    def train_batch(self, batch: list[Sample]) -> float:
        """One SGD step on a mini-batch of (input, label); the mean loss."""
        with self._lock:
            x = torch.stack([self._standardise(raw, learn=False) for raw, _ in batch])
            y = torch.tensor([float(label) for _, label in batch])
            for p in self.params:
                p.grad = None
            loss = torch.nn.functional.binary_cross_entropy(self.net(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            with torch.no_grad():
                for p in self.params:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-self.learning_rate)
            self.updates += len(batch)
            return float(loss.detach())

    def save(self, path: Path) -> None:
        """Write weights and standardiser (atomic replace)."""
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(
                {
                    "net": self.net.state_dict(),
                    "mean": self.mean,
                    "m2": self.m2,
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
            self.mean, self.m2 = state["mean"], state["m2"]
            self.count, self.updates = int(state["count"]), int(state["updates"])
        log.info("entropy-model restored from %s (%d updates)", path, self.updates)
