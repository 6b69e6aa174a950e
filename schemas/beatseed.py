"""The seed of each beat (SPEC 8): SplitMix64 of the run seed and the beat number.

Every pulse carries it; plugins that use randomness derive it from there, so
the same config, seed and scenario give the same run. The plugin test
harness makes pulses with the same seeds as the arbiter.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1


def beat_seed(run_seed: int, beat: int) -> int:
    """The seed of ``beat`` (SplitMix64 of run seed and beat; 53 bits, exact in JSON)."""
    z = (run_seed * 0x9E3779B97F4A7C15 + beat + 1) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 53) - 1)
