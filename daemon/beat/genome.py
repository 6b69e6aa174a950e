"""The genome: weights {R, B, E, O} of the four cores (SPEC 2.4).

Each beat: O += clamp(PID output, ±output_limit); when threat > 0.5,
E = 0.15 · threat · e^(−t/50) · (1 − O/0.3) floored at 0 (t = beat number);
every weight floored at 0.01, then all normalised to sum 1.
"""

from __future__ import annotations

import math

from venom.daemon.config.settings import GenomeConfig
from venom.schemas import Weights


class Genome:
    """Holds and adapts the core weights; always normalised."""

    def __init__(self, config: GenomeConfig | None = None) -> None:
        self.config = config or GenomeConfig()
        c = self.config
        self._w = self._normalise([c.R, c.B, c.E, c.O])
        self._weights = self._as_weights()

    @property
    def weights(self) -> Weights:
        """The weights in force (normalised)."""
        return self._weights

    def _as_weights(self) -> Weights:
        r, b, e, o = self._w
        return Weights(R=r, B=b, E=e, O=o)

    def _normalise(self, w: list[float]) -> list[float]:
        floor = self.config.floor
        w = [max(floor, x) for x in w]
        total = sum(w)
        return [x / total for x in w]

    def step(
        self, pid_output: float, threat: float, beat: int, output_limit: float = 0.05
    ) -> Weights:
        """Adapt the weights after a beat; return the new weights."""
        c = self.config
        r, b, e, o = self._w
        if math.isfinite(pid_output):
            o += min(output_limit, max(-output_limit, pid_output))
        if threat > c.threat_trigger:
            # O after this beat's PID step, before normalisation: the E boost
            # shrinks as optimisation already holds more weight.
            e = c.e_gain * threat * math.exp(-beat / c.e_decay_beats) * (1.0 - o / c.o_ref)
            e = max(0.0, e)
        self._w = self._normalise([r, b, e, o])
        self._weights = self._as_weights()
        return self._weights

    def restore(self, weights: Weights) -> None:
        """Take ``weights`` as they are (a pulse's, already floored and normalised)."""
        self._w = [weights.R, weights.B, weights.E, weights.O]
        self._weights = weights

    def set(self, weights: Weights) -> Weights:
        """Set the weights (control API): finite, >= 0, a finite sum > 0; floored, normalised.

        ValueError names the weight (or the sum) that is wrong; the weights
        in force are untouched then.
        """
        values = [weights.R, weights.B, weights.E, weights.O]
        for name, value in zip("RBEO", values, strict=True):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"weight {name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"weight {name} must be a finite number, got {value!r}")
            if value < 0:
                raise ValueError(f"weight {name} must be >= 0, got {value}")
        total = sum(float(v) for v in values)
        if not math.isfinite(total):
            raise ValueError("the weights' sum overflows to infinity: scale them down")
        if total <= 0:
            raise ValueError("the weights' sum must be > 0 (the weights must not all be zero)")
        self._w = self._normalise([float(v) for v in values])
        self._weights = self._as_weights()
        return self._weights
