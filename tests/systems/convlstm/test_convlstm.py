"""The convolutional LSTM: its balance against an independent NumPy replay of its weights."""

from pathlib import Path

import numpy as np
import pytest
import torch

from rdlens.convlstm import ConvLSTM, step_loss
from rdlens.errors import ConfigError


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _replay(model: ConvLSTM, start: np.ndarray, cond: np.ndarray, steps: int):
    """The gate equations written out in float64 NumPy: periodic padding by np.pad(wrap) and the
    convolution as a sum over kernel offsets, independent of torch's conv2d."""
    w = model.gates.weight.detach().double().numpy()
    b = model.gates.bias.detach().double().numpy()
    v = model.readout.weight.detach().double().numpy()[:, :, 0, 0]
    vb = model.readout.bias.detach().double().numpy()
    r = model.kernel // 2
    x = start.astype(np.float64)
    n, _, hh, ww = x.shape
    h = np.zeros((n, model.hidden, hh, ww))
    c = np.zeros_like(h)
    planes = np.broadcast_to(cond[:, :, None, None], (n, cond.shape[1], hh, ww))
    reaction, diffusion, frames = [], [], [x]
    for _ in range(steps):
        z = np.pad(np.concatenate([x, planes, h], axis=1), ((0, 0), (0, 0), (r, r), (r, r)), mode="wrap")
        a = np.zeros((n, 4 * model.hidden, hh, ww)) + b[None, :, None, None]
        for dy in range(model.kernel):
            for dx in range(model.kernel):
                a += np.einsum("oi,nihw->nohw", w[:, :, dy, dx], z[:, :, dy:dy + hh, dx:dx + ww])
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
        reaction.append(np.linalg.norm((i * g).reshape(n, -1), axis=1))
        diffusion.append(np.linalg.norm(((1 - f) * c).reshape(n, -1), axis=1))
        c = f * c + i * g
        h = o * np.tanh(c)
        x = x + np.einsum("oi,nihw->nohw", v, h) + vb[None, :, None, None]
        frames.append(x)
    return np.array(reaction), np.array(diffusion), np.stack(frames, axis=1)


def test_rollout_balance_and_frames_match_an_independent_numpy_replay():
    torch.manual_seed(3)
    model = ConvLSTM(2, hidden=4, kernel=3, conditions=2).double()
    torch.nn.init.normal_(model.readout.weight, std=0.1)  # a non-trivial read-out (zero at initialisation)
    start = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    cond = torch.randn(3, 2, dtype=torch.float64)
    frames, record = model.rollout(start, 5, cond)
    reaction, diffusion, expected = _replay(model, start.numpy(), cond.numpy(), 5)
    np.testing.assert_allclose(record.reaction, reaction, rtol=1e-10)
    np.testing.assert_allclose(record.diffusion, diffusion, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(frames.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert np.all(record.diffusion[0] == 0) and np.all(record.diffusion[1:] > 0)  # C_0 = 0: nothing to erase at first
    trace = record.trace()
    assert trace.M_react == pytest.approx(reaction.mean()) and trace.M_diff == pytest.approx(diffusion.mean())


def test_periodic_padding_makes_the_model_commute_with_shifts_of_the_torus():
    torch.manual_seed(0)
    model = ConvLSTM(2, hidden=4, kernel=3).double()
    torch.nn.init.normal_(model.readout.weight, std=0.1)
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    a, _ = model.rollout(x, 3)
    b, _ = model.rollout(torch.roll(x, (3, 5), dims=(2, 3)), 3)
    torch.testing.assert_close(torch.roll(a, (3, 5), dims=(3, 4)), b)


def test_teacher_forced_prediction_of_an_untrained_model_is_persistence():
    model = ConvLSTM(2, hidden=4)
    frames = torch.randn(2, 4, 2, 8, 8)
    torch.testing.assert_close(model(frames[:, :-1]), frames[:, :-1])
    assert float(step_loss(model, frames).detach()) == pytest.approx(float(((frames[:, 1:] - frames[:, :-1]) ** 2).mean()))


@pytest.mark.parametrize("kwargs, fragment", [({"hidden": 0}, "hidden must be an integer >= 1"),
                                              ({"kernel": 4}, "kernel must be odd"),
                                              ({"channels": 2.5}, "channels must be an integer")])
def test_bad_shapes_are_refused_with_the_value(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ConvLSTM(**{"channels": 2, **kwargs})


def test_missing_conditions_are_refused():
    model = ConvLSTM(2, hidden=4, conditions=2)
    with pytest.raises(ConfigError, match=r"conditions of shape \(1, 2\)"):
        model.rollout(torch.zeros(1, 2, 8, 8), 2)


def test_free_running_training_prediction_is_the_rollout():
    """The free-running loss trains exactly what a rollout does: its predictions from frame 0 are
    the rollout's frames, whatever the later true frames are."""
    torch.manual_seed(1)
    model = ConvLSTM(2, hidden=4, conditions=1).double()
    torch.nn.init.normal_(model.readout.weight, std=0.1)
    frames = torch.randn(2, 5, 2, 8, 8, dtype=torch.float64)
    cond = torch.randn(2, 1, dtype=torch.float64)
    free = model(frames, cond, free=True)
    rolled, _ = model.rollout(frames[:, 0], 5, cond)
    torch.testing.assert_close(free.detach(), rolled[:, 1:])
    assert not torch.allclose(model(frames, cond).detach(), free.detach())  # teacher forcing differs


# ---- the ConvLSTM as a registered system (rdlens convlstm) and inside the patterns study ------

TINY = ["--settings", "0.029:0.062,0.055:0.062", "--size", "16", "--length", "0.16", "--frames", "3",
        "--frame-every", "10", "--trajectories", "2", "--rollouts", "1", "--long-factor", "2", "--hidden", "4",
        "--steps", "4", "--window", "2", "--batch-size", "2", "--quiet", "--json"]


def _run(tmp_path, capsys, *extra):
    import json

    from rdlens.cli import main

    assert main(["convlstm", *TINY, *extra, "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    return summary, tmp_path / summary["run_dir"].split("/")[-1]


def test_rdlens_convlstm_runs_and_its_R_is_the_balance_of_its_rollouts(tmp_path, capsys):
    summary, run_dir = _run(tmp_path, capsys)
    with np.load(run_dir / "rollouts.npz") as z:
        reaction, diffusion, x, truth = z["reaction"], z["diffusion"], z["x"], z["truth"]
    assert x.shape == truth.shape == (2, 7, 2, 16, 16)  # 2 settings x 1 rollout, frames 0..3*2
    np.testing.assert_array_equal(x[:, 0], truth[:, 0])  # rolled out from the true starts
    m_react, m_diff = reaction[:3].mean(), diffusion[:3].mean()  # the horizon: 3 frames
    assert summary["M_react"] == pytest.approx(m_react, rel=1e-12)
    assert summary["R"] == pytest.approx(m_react / m_diff, rel=1e-12)
    assert summary["R_long"] == pytest.approx(reaction.mean() / diffusion.mean(), rel=1e-12)
    assert summary["steps"] == 4 and summary["system"] == "convlstm"


def test_every_training_setting_reaches_the_convlstm(tmp_path, capsys):
    base, _ = _run(tmp_path / "a", capsys)
    again, _ = _run(tmp_path / "b", capsys)
    assert again["R"] == base["R"]  # the same seed: the same numbers
    for extra in (["--optimizer", "adamw", "--weight-decay", "0.5"], ["--grad-clip", "1e-6"], ["--training", "teacher"],
                  ["--input-noise", "0.1"], ["--window-final", "3"], ["--pool", "4", "--pool-share", "0.5"]):
        other, _ = _run(tmp_path / extra[1], capsys, *extra)
        assert other["R"] != base["R"], extra


def test_the_patterns_study_nests_the_systems_configs_under_their_own_names(tmp_path):
    from rdlens import pattern_study as S

    cfg = S.profile_config("smoke", {"convlstm_optimizer": "adamw", "convlstm_grad_clip": 0.5,
                                     "ddpm_precision": "bfloat16", "ddpm_lr_schedule": "cosine"})
    assert (cfg.convlstm.optimizer, cfg.convlstm.grad_clip) == ("adamw", 0.5)
    assert (cfg.ddpm.precision, cfg.ddpm.lr_schedule) == ("bfloat16", "cosine")
    # the study's grid and trajectories are its own, and each training seed its own
    assert cfg.ddpm.unet.image_size == cfg.data.model.size and cfg.ddpm.unet.in_channels == 2
    assert cfg.convlstm.data.frames == cfg.data.frames and cfg.convlstm_config(3).seed == 3
    profile = tmp_path / "p.toml"
    profile.write_text('[patterns]\nframes = 4\n[patterns.convlstm]\nwindow = 3\nhidden = 6\n[patterns.ddpm]\nsteps = 7\n')
    nested = S.profile_config(str(profile))
    assert (nested.convlstm.window, nested.convlstm.hidden, nested.ddpm.steps) == (3, 6, 7)
    with pytest.raises(ConfigError, match="window = 5 exceeds frames = 4"):
        S.profile_config(str(profile), {"convlstm_window": 5})


# ---- stabilisers --------------------------------------------------------------------------


def test_the_window_curriculum_grows_linearly_from_window_to_window_final():
    from rdlens.systems.convlstm.model import ConvLSTMConfig, Trajectories

    cfg = ConvLSTMConfig(data=Trajectories(frames=40), window=10, window_final=40, steps=31)
    assert [cfg.window_at(s) for s in (0, 1, 15, 30)] == [10, 11, 25, 40]
    assert ConvLSTMConfig(window=10, steps=31).window_at(30) == 10  # no curriculum: fixed
    with pytest.raises(ConfigError, match=r"window_final must be in \[window = 10, frames = 40\]"):
        ConvLSTMConfig(data=Trajectories(frames=40), window=10, window_final=50)


def test_the_pool_targets_are_the_true_gray_scott_continuation():
    """true_windows against Gray-Scott written out from the equations (reference_step)."""
    from dataclasses import replace

    from rdlens.measures.patterns import from_unit, to_unit
    from rdlens.systems.convlstm.model import ConvLSTMConfig, Trajectories, true_windows
    from rdlens.systems.grayscott.model import GrayScott, pearson_spots, reference_step

    d = Trajectories(model=GrayScott(size=16, length=0.16), frame_every=3, frames=4)
    cfg = ConvLSTMConfig(data=d, window=2)
    settings = np.array([[0.029, 0.062], [0.055, 0.062]])
    fields = [pearson_spots(replace(d.model, F=F, k=k), seed, count=2) for seed, (F, k) in enumerate(settings)]
    x = torch.from_numpy(np.stack([to_unit(u, v) for u, v in fields]))
    got = true_windows(cfg, x, settings, frames=2).numpy()
    assert got.shape == (2, 3, 2, 16, 16)
    for j, (F, k) in enumerate(settings):
        u, v = from_unit(x[j].numpy())
        model = replace(d.model, F=F, k=k)
        for frame in (1, 2):
            for _ in range(3):
                u, v, _, _ = reference_step(u, v, model)
            np.testing.assert_allclose(got[j, frame], to_unit(u, v), atol=1e-6)


def test_a_pool_needs_the_settings_and_only_physical_fields_are_kept():
    from rdlens.measures.patterns import from_unit, physical
    from rdlens.systems.convlstm.model import ConvLSTMConfig, Trajectories, train

    ok = torch.zeros(1, 2, 4, 4)
    far = ok.clone()
    far[0, 1, 0, 0] = 9.0  # v = 2.5: out of the range Gray-Scott can continue from
    bad = ok.clone()
    bad[0, 0, 1, 1] = float("nan")
    assert physical(*from_unit(torch.cat([ok, far, bad]).numpy())).tolist() == [True, False, False]
    cfg = ConvLSTMConfig(data=Trajectories(frames=4), window=2, pool=4, steps=1)
    with pytest.raises(ConfigError, match="a pool needs the \\(F, k\\) of each of the 3 trajectories"):
        train(cfg, torch.zeros(3, 5, 2, 8, 8), torch.zeros(3, 2), Path("/nonexistent/ckpt.pt"))


def test_a_run_with_a_pool_and_noise_resumes_bit_identically(tmp_path):
    """The pool is checkpointed with the weights: 3 steps, then 3 more, equal 6 at once."""
    from rdlens.measures.patterns import to_unit
    from rdlens.systems.convlstm.model import ConvLSTMConfig, Trajectories, train
    from rdlens.systems.grayscott.model import GrayScott, pearson_spots

    d = Trajectories(model=GrayScott(size=16, length=0.16), frame_every=3, frames=4)
    fields = [pearson_spots(d.model, seed, count=2) for seed in range(2)]
    x = torch.from_numpy(np.stack([np.stack([to_unit(u, v)] * 5) for u, v in fields]))
    cond, settings = torch.zeros(2, 2), np.array([[d.model.F, d.model.k]] * 2)
    full = ConvLSTMConfig(data=d, hidden=4, window=2, steps=6, batch_size=4, pool=3, input_noise=0.05)
    whole, _ = train(full, x, cond, tmp_path / "a.pt", settings=settings)
    train(replace_steps(full, 3), x, cond, tmp_path / "b.pt", settings=settings)
    resumed, fit = train(full, x, cond, tmp_path / "b.pt", settings=settings)
    assert fit.resumed_from == 3
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def replace_steps(cfg, steps):
    from dataclasses import replace

    return replace(cfg, steps=steps)
