"""One numpy Generator per plugin, reseeded each beat: ``default_rng(seed)``'s draws, cheaper.

Plugins that draw noise do so from the pulse's seed (SPEC 8), and
``np.random.default_rng(seed)`` costs about 35 µs a beat on the development
machine: a SeedSequence (9 µs), its ``generate_state`` (12 µs, numpy calls
on 8 words) and a new PCG64 and Generator. :class:`BeatRng` keeps one
Generator and sets its PCG64 state instead: the SeedSequence still mixes the
seed (numpy's own code), and the few integer steps after it, generate_state
and PCG64's seeding, are done here in Python ints. The stream is the same,
draw for draw (tests/unit/plugins/test_plant.py checks it against ``default_rng``
for thousands of seeds).
"""

from __future__ import annotations

import numpy as np

_MASK32 = 0xFFFFFFFF
_MASK128 = (1 << 128) - 1
#: SeedSequence.generate_state's hash constant and multiplier.
_INIT_B = 0x8B51F9DD
_MULT_B = 0x58F38DED
#: PCG64's 128-bit LCG multiplier.
_PCG_MULT = (2549297995355413924 << 64) + 4865540595714422341


def _hash_steps(words: int) -> tuple[tuple[int, int, int], ...]:
    """(pool index, xor constant, multiplier) of each word generate_state hashes out."""
    steps, h = [], _INIT_B
    for i in range(words):
        xor = h
        h = (h * _MULT_B) & _MASK32
        steps.append((i % 4, xor, h))
    return tuple(steps)


#: PCG64 takes 4 64-bit words, 8 32-bit ones, from a pool of 4.
_STEPS = _hash_steps(8)


def pcg64_state(seed: int) -> tuple[int, int]:
    """(state, inc) of ``np.random.PCG64(seed)``, as its ``state`` property gives them."""
    pool = np.random.SeedSequence(seed).pool.tolist()
    w = []
    for i, xor, mult in _STEPS:  # SeedSequence.generate_state(4, np.uint64)
        v = ((pool[i] ^ xor) * mult) & _MASK32
        w.append(v ^ (v >> 16))
    # uint64 words are pairs of uint32, low first; PCG64 seeds from (high, low) pairs.
    initstate = (w[1] << 96) | (w[0] << 64) | (w[3] << 32) | w[2]
    initseq = (w[5] << 96) | (w[4] << 64) | (w[7] << 32) | w[6]
    inc = ((initseq << 1) | 1) & _MASK128
    # pcg_setseq_128_srandom_r: state = 0; step; state += initstate; step.
    return ((inc + initstate) * _PCG_MULT + inc) & _MASK128, inc


class BeatRng:
    """A Generator whose :meth:`reseed` makes it draw what ``default_rng(seed)`` would."""

    __slots__ = ("_bits", "generator")

    def __init__(self) -> None:
        self._bits = np.random.PCG64(0)
        self.generator = np.random.Generator(self._bits)

    def reseed(self, seed: int) -> np.random.Generator:
        state, inc = pcg64_state(seed)
        self._bits.state = {
            "bit_generator": "PCG64",
            "state": {"state": state, "inc": inc},
            "has_uint32": 0,
            "uinteger": 0,
        }
        return self.generator
