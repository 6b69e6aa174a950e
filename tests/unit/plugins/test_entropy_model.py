"""The torch threat model: learns online, deterministic, restores, torch stays contained."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from venom.plugins.model.entropy_model import EntropyModel, ModelConfig
from venom.plugins.sdk import PluginContext, validate_plugin
from venom.schemas import Label, MlWeight, Pulse, ThreatReply

pytestmark = pytest.mark.anyio


def auc(scores: list[float], labels: list[int]) -> float:
    """ROC-AUC by ranks (Mann-Whitney U)."""
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = np.array(labels) == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def synthetic(n: int, seed: int = 1) -> list[tuple[Pulse, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for beat in range(1, n + 1):
        label = int(rng.random() < 0.2)
        features = {
            "plant.temperature": 50 + rng.normal(0, 3) + 15 * label,
            "plant.jitter": 0.04 + rng.normal(0, 0.005) + 0.03 * label * rng.random(),
            "plant.coherence": 0.95 + rng.normal(0, 0.02),
        }
        out.append(
            (
                Pulse(
                    beat=beat, issued_at=0, deadline=1, t_lambda=0.004, seed=beat, features=features
                ),
                label,
            )
        )
    return out


async def run(model: EntropyModel, data: list[tuple[Pulse, int]]) -> list[float]:
    scores = []
    for pulse, label in data:
        reply = await model.handle(pulse)
        await model.after_reply(pulse)  # as a host does, once the reply has gone out
        assert isinstance(reply, ThreatReply)
        assert 0.0 <= reply.threat <= 1.0
        scores.append(reply.threat)
        await model.on_mesh(Label(beat=pulse.beat, label=label))
    return scores


async def test_learns_online_to_auc_above_0_9(tmp_path: Path) -> None:
    assert validate_plugin(EntropyModel) is EntropyModel
    data = synthetic(2000)
    model = EntropyModel(ModelConfig(), PluginContext(state_dir=tmp_path))
    scores = await run(model, data)
    half = len(data) // 2
    assert auc(scores[half:], [lab for _, lab in data[half:]]) >= 0.9
    # Mini-batches of 8, two beats behind: all but the last few are learnt.
    assert 2000 - 8 - 2 <= model.updates <= 2000


async def test_deterministic_and_restored_after_a_restart(tmp_path: Path) -> None:
    data = synthetic(300, seed=2)
    a = EntropyModel(ModelConfig(seed=5), PluginContext(state_dir=tmp_path / "a"))
    b = EntropyModel(ModelConfig(seed=5), PluginContext(state_dir=tmp_path / "b"))
    assert await run(a, data) == await run(b, data)
    await a.close()
    probe = synthetic(20, seed=9)
    before = [a.score(a.vector(p)) for p, _ in probe]
    restarted = EntropyModel(ModelConfig(seed=123), PluginContext(state_dir=tmp_path / "a"))
    await restarted.open()
    assert restarted.updates == a.updates > 280
    assert [restarted.score(restarted.vector(p)) for p, _ in probe] == before


async def test_ml_weight_follows_the_mesh() -> None:
    model = EntropyModel()
    await model.on_mesh(MlWeight(value=0.3))
    reply = await model.handle(synthetic(1)[0][0])
    assert isinstance(reply, ThreatReply)
    assert reply.ml_weight == 0.3
    await model.on_mesh(MlWeight(value=7.0))  # out of range: ignored
    assert model.ml_weight == 0.3


def test_only_the_model_imports_torch() -> None:
    code = (
        "import sys, venom.daemon.cli.main, venom.daemon.service.run, venom.plugins, "
        "venom.plugins.cores, venom.plugins.estimators, venom.plugins.guards, "
        "venom.plugins.ledger, venom.plugins.sensors; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_loading_the_plugin_class_does_not_import_torch() -> None:
    """The arbiter and the start-up checks load every class; building the model loads torch."""
    code = (
        "import sys\n"
        "from venom.plugins.registry import load_plugin_class\n"
        "cls = load_plugin_class('entropy-model')\n"
        "cls.decode_config({})\n"
        "print('torch' in sys.modules)\n"
        "learner = cls().learner\n"
        "learner.train_batch([(learner.tensor([0.0] * 9), 1)] * 8)\n"
        "print('torch' in sys.modules, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Nor does learning pull in torch._dynamo (torch.optim, manual_seed: seconds at start).
    assert out.stdout.split() == ["False", "True", "False"]


async def test_scored_in_python_from_the_weights_torch_trained(tmp_path: Path) -> None:
    """Inference runs off torch on a copy of the weights: the copy follows every step."""
    from venom.plugins.model.learner import Weights

    model = EntropyModel(ModelConfig(seed=3), PluginContext(state_dir=tmp_path))
    start = Weights.of(model.learner.net)
    await run(model, synthetic(400, seed=3))
    learner = model.learner
    assert model.updates > 380
    assert learner.weights == Weights.of(learner.net) != start  # torch trained; copied out
    # The Python forward is torch's float32 forward, to float32's precision.
    probe = [model.vector(p) for p, _ in synthetic(50, seed=11)]
    gaps = [abs(learner.score(raw) - learner.torch_score(raw)) for raw in probe]
    assert max(gaps) < 1e-5
    assert len({round(learner.score(raw), 3) for raw in probe}) > 5  # not a constant


def test_non_finite_inputs_are_zero_and_extreme_scores_stay_in_range() -> None:
    model = EntropyModel()
    learner = model.learner
    assert learner.raw([float("nan"), float("inf"), -float("inf"), 2.5]) == [0.0, 0.0, 0.0, 2.5]
    w = learner.weights
    ones = w._replace(w1=[[1.0] * learner.inputs] * len(w.w1), b1=[0.0] * len(w.b1))
    x = [1.0] * learner.inputs  # every hidden unit at tanh(9) ≈ 1
    assert ones._replace(w2=[1e6] * len(w.w2), b2=0.0).forward(x) == 1.0
    assert ones._replace(w2=[-1e6] * len(w.w2), b2=0.0).forward(x) == 0.0  # no OverflowError
