"""coherence: RCF and the MST against a brute-force Kruskal on small N."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from venom.plugins.estimators import (
    CoherenceConfig,
    CoherenceEstimator,
    global_coherence,
    mst_edges,
    rcf_matrix,
)
from venom.plugins.sdk import validate_plugin
from venom.schemas import EstimateReply, Pulse

pytestmark = pytest.mark.anyio


def kruskal_mean_rcf(rcf: np.ndarray) -> float:
    """Brute force: sort all edges by weight 1 − RCF, union-find."""
    n = rcf.shape[0]
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    chosen = []
    for i, j in sorted(itertools.combinations(range(n), 2), key=lambda e: 1 - rcf[e]):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
            chosen.append(rcf[i, j])
    return float(np.mean(chosen))


@pytest.mark.parametrize("seed", range(12))
def test_mst_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(2, 25)), int(rng.integers(1, 6))
    psi = rng.normal(size=(n, d)) + 1j * rng.normal(size=(n, d)) * (seed % 2)
    rcf = rcf_matrix(psi)
    coherence, nodes = global_coherence(psi)
    assert nodes == n
    assert coherence == pytest.approx(kruskal_mean_rcf(rcf), rel=1e-6)  # float32 keys
    _parents, children = mst_edges(rcf)
    assert len(children) == n - 1
    assert sorted({0, *children.tolist()}) == list(range(n))  # spans every node


def test_rcf_properties() -> None:
    rng = np.random.default_rng(3)
    psi = rng.normal(size=(6, 4)) + 1j * rng.normal(size=(6, 4))
    rcf = rcf_matrix(psi * rng.uniform(0.5, 3.0, size=(6, 1)))  # scale does not matter
    np.testing.assert_allclose(np.diag(rcf), 1.0)
    np.testing.assert_allclose(rcf, rcf.T)
    assert ((rcf >= 0) & (rcf <= 1 + 1e-12)).all()
    assert rcf_matrix(np.array([[1.0, 0.0], [0.0, 1.0]]))[0, 1] == 0.0
    assert rcf_matrix(np.array([[1.0, 0.0], [-1.0, 0.0]]))[0, 1] == pytest.approx(1.0)


def test_identical_states_are_fully_coherent_and_one_node_is_trivial() -> None:
    assert global_coherence(np.ones((50, 3)))[0] == pytest.approx(1.0)
    assert global_coherence(np.ones((1, 3))) == (1.0, 1)


async def test_plugin_reads_node_states_from_features() -> None:
    assert validate_plugin(CoherenceEstimator) is CoherenceEstimator
    features = {
        "plant.psi0.0": 1.0,
        "plant.psi0.1": 0.0,
        "plant.psi1.0": 0.0,
        "plant.psi1.1": 1.0,
        "plant.psi2.0": 1.0,
        "plant.psi2.1": 1.0,
        "other": 5.0,
    }
    est = CoherenceEstimator()
    reply = await est.handle(
        Pulse(beat=1, issued_at=0, deadline=1, t_lambda=0.004, seed=1, features=features)
    )
    assert isinstance(reply, EstimateReply)
    assert reply.values["nodes"] == 3.0
    assert reply.values["coherence"] == pytest.approx(0.5)  # both MST edges have RCF ½
    big = {f"plant.psi{i}.{k}": float((i * 7 + k) % 5) for i in range(300) for k in range(3)}
    threaded = CoherenceEstimator(CoherenceConfig(thread_above=100))
    out = await threaded.handle(
        Pulse(beat=1, issued_at=0, deadline=1, t_lambda=0.004, seed=1, features=big)
    )
    assert isinstance(out, EstimateReply)
    assert out.values["nodes"] == 300.0


async def test_the_state_layout_follows_the_pulse_keys() -> None:
    """The parsed layout is kept between pulses with the same keys, and redone when they change."""
    est = CoherenceEstimator()

    def at(beat: int, features: dict[str, float]) -> Pulse:
        return Pulse(
            beat=beat, issued_at=0, deadline=1, t_lambda=0.004, seed=beat, features=features
        )

    two = {"plant.psi0.0": 1.0, "plant.psi1.1": 1.0}
    for beat, features, nodes, coherence in (
        (1, {"plant.y0": 1.0}, 0.0, 1.0),
        (2, two, 2.0, 0.0),
        (3, {**two, "plant.psi1.0": 1.0}, 2.0, 0.5),
        (4, {"plant.psi0.0": 1.0, "plant.psi1.1": 0.0, "plant.psi1.0": 2.0}, 2.0, 1.0),
        (5, {}, 0.0, 1.0),
    ):
        reply = await est.handle(at(beat, features))
        assert isinstance(reply, EstimateReply)
        assert reply.values["nodes"] == nodes
        assert reply.values["coherence"] == pytest.approx(coherence)
