"""Algorithm 1 and its derivatives (slicing/rl/twin.py, twin_derived.py): eq. 8's soft merge written into a real
RLlib DQN, the sample budget, eq. 12's loss, eq. 13's regulariser gradient, and the loss landscape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slicing.rl.settings import TwinSettings
from slicing.rl.twin import get_weights, set_weights, soft_merge

TINY = TwinSettings(seeds=(0,), rounds=2, steps_per_round=8, twin_steps=8, learning_starts=4, twin_updates=2,
                    hidden=(16, 16), twin_hidden=8, twin_seq_len=2, eval_steps=3, distill_epochs=2,
                    offline_transitions=32, offline_epochs=2, landscape_points=5, target_update=4)


def test_soft_merge_is_eq8_tensor_by_tensor():
    w1 = {"m": {"a": np.array([1.0, 2.0]), "b": np.array([[4.0]])}}
    w2 = {"m": {"a": np.array([3.0, 6.0]), "b": np.array([[0.0]])}}
    out = soft_merge(w1, w2, 0.25)
    assert np.allclose(out["m"]["a"], [2.5, 5.0]) and np.allclose(out["m"]["b"], [[1.0]])
    assert np.allclose(soft_merge(w1, w2, 1.0)["m"]["a"], w1["m"]["a"])
    assert np.allclose(soft_merge(w1, w2, 0.0)["m"]["a"], w2["m"]["a"])


def test_soft_merge_refuses_bad_zeta_and_different_networks():
    w = {"m": {"a": np.zeros(1)}}
    with pytest.raises(ValueError, match="zeta"):
        soft_merge(w, w, 1.5)
    with pytest.raises(ValueError, match="parameter names differ"):
        soft_merge(w, {"m": {"b": np.zeros(1)}}, 0.5)


def test_merged_weights_reach_the_learner_and_the_env_runner(ray_session):
    from slicing.rl.bs_env import REAL_ENV, register
    from slicing.rl.twin import dqn_config

    register()
    a1 = dqn_config(TINY, REAL_ENV, TINY.env, 0, 8).build_algo()
    a2 = dqn_config(TINY, REAL_ENV, TINY.env, 1, 8).build_algo()
    try:
        w1, w2 = get_weights(a1), get_weights(a2)
        key = "encoder.net.mlp.0.weight"
        assert not np.allclose(w1["default_policy"][key], w2["default_policy"][key])
        set_weights(a1, soft_merge(w1, w2, 0.25))
        got = get_weights(a1)["default_policy"]
        assert np.allclose(got[key], 0.25 * w1["default_policy"][key] + 0.75 * w2["default_policy"][key])
        runner = a1.env_runner.module.state_dict()
        assert np.allclose(runner[key].numpy(), got[key])
    finally:
        a1.stop()
        a2.stop()


def test_algorithm1_spends_only_agent1s_real_steps_and_recalibrates_the_twin(ray_session):
    from slicing.rl.twin import run_arm, run_random

    res = run_arm(TINY, 0, use_twin=True)
    assert [r.real_steps for r in res.rounds] == [8, 16]  # the twin's 8 steps per round are not counted
    assert len(res.data) == 16
    assert all(r.twin is not None and r.twin["transitions"] == 8 * r.round for r in res.rounds)
    assert res.twin_weights is not None and res.twin_blob is not None
    plain = run_arm(TINY, 0, use_twin=False)
    assert [r.real_steps for r in plain.rounds] == [8, 16] and all(r.twin is None for r in plain.rounds)
    rnd = run_random(TINY, 0)
    assert len(rnd.data) == 16 and rnd.rounds[-1].reward >= 0.0


def test_distillation_loss_is_cross_entropy_on_pseudo_labels():
    from slicing.rl.twin_derived import distill_loss

    torch.manual_seed(0)
    logits = torch.randn(7, 5)
    labels = torch.randint(0, 5, (7,))
    assert torch.allclose(distill_loss(logits, labels), torch.nn.functional.cross_entropy(logits, labels))


def test_a_student_learns_its_teachers_actions():
    from slicing.rl.twin_derived import build_module, distill, q_values

    teacher = build_module(TINY, seed=0)
    states = np.random.default_rng(0).uniform(0, 3, (500, 3))
    student, fit = distill(teacher, states, 16, epochs=60, seed=0)
    assert fit["agreement"] > 0.8
    with torch.no_grad():
        x = torch.as_tensor(states[:50], dtype=torch.float32)
        assert (student(x).argmax(1) == q_values(teacher, x).argmax(1)).float().mean() > 0.8


def test_offline_regulariser_gradient_is_upsilon_times_the_distance():
    from slicing.rl.twin_derived import build_module, online_params, regulariser

    m = build_module(TINY, seed=0)
    anchor = {k: torch.zeros_like(p) + 0.1 for k, p in online_params(m)}
    upsilon = 3.0
    m.zero_grad()
    (0.5 * upsilon * regulariser(m, anchor)).backward()
    for k, p in online_params(m):
        assert torch.allclose(p.grad, upsilon * (p.detach() - anchor[k]), atol=1e-6)
    assert all(p.grad is None for k, p in m.named_parameters() if k.startswith("_target"))


def test_offline_training_with_a_large_upsilon_stays_near_the_anchor():
    from slicing.rl.twin import run_random
    from slicing.rl.twin_derived import build_module, online_params, train_offline

    data = run_random(TINY.model_copy(update={"rounds": 4}), 0).data
    anchor_module = build_module(TINY, seed=5)
    anchor = {"default_policy": {k: v.detach().numpy().copy() for k, v in anchor_module.state_dict().items()}}

    def distance(upsilon):
        m = build_module(TINY, anchor, seed=5)
        train_offline(m, data, TINY.model_copy(update={"offline_epochs": 5}), anchor, upsilon)
        return sum(float(((p.detach() - torch.as_tensor(anchor["default_policy"][k])) ** 2).sum())
                   for k, p in online_params(m))

    assert distance(100.0) < 0.5 * distance(0.0)
    with pytest.raises(ValueError, match="anchor"):
        train_offline(build_module(TINY), data, TINY, None, 1.0)


def test_landscape_passes_through_the_trained_loss_and_restores_the_weights():
    from slicing.rl.twin import run_random
    from slicing.rl.twin_derived import as_batch, build_module, landscape, td_loss

    data = run_random(TINY.model_copy(update={"rounds": 4}), 0).data
    m = build_module(TINY, seed=0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    loss0 = float(td_loss(m, as_batch(data), TINY.discount, True))
    for kind in ("gradient", "random"):
        res = landscape(m, data, TINY, kind)
        assert res["lambda"][2] == 0.0 and res["loss"][2] == pytest.approx(loss0, rel=1e-5)
        assert res["loss"][0] != res["loss"][2]
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(ValueError, match="kind"):
        landscape(m, data, TINY, "hessian")
