"""LSTM: the gate probe against nn.LSTM, the telescoping identity, generation, training,
and interrupted-then-resumed training."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from rdlens import lstm as L
from rdlens import sequences as S
from rdlens.cli import main
from rdlens.errors import ConfigError


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
def test_probe_reproduces_nn_lstm(dtype, tol, layers, batch_first):
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 8, layers, batch_first=batch_first).to(dtype).eval()
    x = torch.randn(5, 40, 3, dtype=dtype) if batch_first else torch.randn(40, 5, 3, dtype=dtype)
    h0 = torch.randn(layers, 5, 8, dtype=dtype)
    c0 = torch.randn(layers, 5, 8, dtype=dtype)
    out, (h_n, c_n) = lstm(x, (h0, c0))
    records = L.probe(lstm, x, (h0, c0))
    assert len(records) == layers
    last = records[-1]
    assert last.h.shape == (40, 5, 8)
    ref = out.transpose(0, 1) if batch_first else out
    assert (last.h - ref).abs().max() <= tol
    for k, rec in enumerate(records):
        assert (rec.h[-1] - h_n[k]).abs().max() <= tol
        assert (rec.c[-1] - c_n[k]).abs().max() <= tol


def test_probe_handles_projection_and_default_zero_state():
    torch.manual_seed(1)
    lstm = nn.LSTM(2, 6, 2, proj_size=3).double()
    x = torch.randn(15, 4, 2, dtype=torch.float64)
    out, _ = lstm(x)
    assert (L.probe(lstm, x)[-1].h - out).abs().max() <= 1e-12


def test_probe_refuses_what_it_cannot_replay():
    with pytest.raises(ConfigError, match="bidirectional"):
        L.probe(nn.LSTM(1, 4, bidirectional=True), torch.zeros(3, 1, 1))
    with pytest.raises(ConfigError, match="torch.nn.LSTM"):
        L.probe(nn.GRU(1, 4), torch.zeros(3, 1, 1))
    with pytest.raises(ConfigError, match="input must be"):
        L.probe(nn.LSTM(2, 4), torch.zeros(3, 1, 5))


def test_telescoping_identity_sums_updates_to_the_net_change():
    torch.manual_seed(2)
    lstm = nn.LSTM(1, 16).double()
    x = torch.randn(200, 7, 1, dtype=torch.float64)
    c0 = torch.randn(1, 7, 16, dtype=torch.float64)
    rec = L.probe(lstm, x, (torch.zeros(1, 7, 16, dtype=torch.float64), c0))[0]
    total = (rec.reaction - rec.diffusion).sum(dim=0)
    assert (total - (rec.c[-1] - rec.c0)).abs().max() <= 1e-12


def test_balance_trace_is_the_per_sequence_norm_averaged():
    torch.manual_seed(3)
    lstm = nn.LSTM(1, 4).double()
    rec = L.probe(lstm, torch.randn(6, 3, 1, dtype=torch.float64))[0]
    tr = L.balance_trace(rec)
    i, f, g, c = (getattr(rec, k).numpy() for k in "ifgc")
    c_prev = np.concatenate([np.zeros((1, 3, 4)), c[:-1]])
    react = np.sqrt(((i * g) ** 2).sum(-1))
    diff = np.sqrt((((1 - f) * c_prev) ** 2).sum(-1))
    np.testing.assert_allclose(tr.reaction_samples, react, rtol=1e-12)
    np.testing.assert_allclose(tr.diffusion, diff.mean(1), rtol=1e-12)
    assert tr.diffusion[0] == 0.0  # the state starts from zeros: nothing to forget at step 1
    assert np.isnan(tr.R_tau[0]) and tr.M_diff == pytest.approx(diff.mean())


def test_generation_replays_the_model_on_its_own_outputs():
    torch.manual_seed(4)
    model = L.SequenceModel(8, 2).eval()
    warm = torch.randn(3, 20)
    values, records = L.generate(model, warm, steps=10)
    assert values.shape == (3, 11) and records[-1].i.shape == (10, 3, 8)
    # feeding warm-up + generated values (but the last) back through nn.LSTM predicts them again
    full = torch.cat([warm, values[:, :-1]], dim=1)
    with torch.no_grad():
        pred, (h, c) = model(full)
    torch.testing.assert_close(pred[:, 19:], values, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(records[-1].c[-1], c[-1], atol=1e-5, rtol=1e-5)


def _tiny(dataset="sine", **kw):
    base = dict(steps=120, batch_size=32, lr=1e-2, checkpoint_every=40)
    base.update(kw)
    return L.config_for("default", dataset, data={"n_sequences": 120, "length": 60}, **base)


def test_training_on_sine_beats_repeating_the_last_value():
    cfg = _tiny()
    data = S.make_sequences(cfg.data)
    result = L.train(cfg, data)
    ev = L.evaluate(cfg, result.model, data)
    assert ev.test_mse < 0.25 * ev.naive_mse
    assert result.losses[-1] < 0.2 * result.losses[0]
    assert 0.5 < ev.trace.R < 2.0


def test_resume_continues_from_the_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    cfg = _tiny()
    data = S.make_sequences(cfg.data)
    straight = L.train(cfg, data, tmp_path / "a")
    steps_seen = []

    def interrupt_at_90(n):
        steps_seen.append(n)
        if sum(steps_seen) == 90:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        L.train(cfg, data, tmp_path / "b", progress=interrupt_at_90)
    resumed = L.train(cfg, data, tmp_path / "b", resume=True)
    assert resumed.resumed_from == 80  # the last checkpoint before the interruption
    assert resumed.losses == straight.losses
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_paper_setting_uses_its_public_code_values():
    cfg = L.config_for("paper", "sine")
    assert (cfg.init, cfg.batch_size, cfg.lr, cfg.steps, cfg.eval_mode) == ("normal", 0, 1e-2, 200, "free")
    assert cfg.data.noise == 0.05 and cfg.data.n_sequences == 1000
    model = L.build_model(cfg)
    assert torch.all(model.lstm.bias_ih_l0 == 0) and model.lstm.weight_hh_l0.std() > 0.8


def test_cli_lstm_run_then_resume_of_an_interrupted_run(tmp_path, capsys):
    args = ["lstm", "--dataset", "vanderpol", "--n-sequences", "40", "--length", "40", "--steps", "30",
            "--batch-size", "8", "--checkpoint-every", "10", "--quiet", "--device", "cpu", "--out", str(tmp_path)]
    assert main(args + ["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    run = tmp_path / summary["run_dir"].split("/")[-1]
    for name in ("checkpoint.pt", "trace.csv", "trace_samples.npz", "summary.json", "predictions.png",
                 "gates.png", "config.json", "manifest.json", "losses.csv"):
        assert (run / name).exists(), name
    assert summary["eval_mode"] == "teacher" and summary["naive_mse"] > 0 and summary["steps"] == 30
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 30
    # a finished run cannot be resumed; an unfinished one (no summary.json) can
    assert main(["lstm", "--resume", str(run), "--quiet"]) == 2
    (run / "summary.json").unlink()
    assert main(["lstm", "--resume", str(run), "--quiet", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["resumed_from_step"] == 30 and again["R"] == pytest.approx(summary["R"])


@pytest.mark.parametrize("args, fragment", [(["--steps", "-1"], "steps must be"), (["--lr", "0"], "lr must be"),
                                            (["--length", "2"], "length must be"),
                                            (["--batch-size", "5000"], "exceeds")])
def test_cli_lstm_bad_input_exits_2(tmp_path, capsys, args, fragment):
    assert main(["lstm", "--quiet", "--out", str(tmp_path), *args]) == 2
    assert fragment in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_split_none_trains_on_every_sequence_and_measures_a_training_one():
    """The public code's protocol: all sequences in training, the metric on a training sequence."""
    from rdlens import lstm, sequences

    cfg = lstm.config_for("paper", "sine", data={"n_sequences": 10, "length": 20}, steps=2, split="none",
                          eval_sequences=1)
    data = sequences.make_sequences(cfg.data)
    assert lstm.training_set(cfg, data).shape[0] == 10 == cfg.n_train
    ev = lstm.evaluate(cfg, lstm.train(cfg, data).model, data)
    np.testing.assert_array_equal(ev.inputs, data.train[:1])
    held = lstm.evaluate(replace(cfg, split="held-out"), lstm.build_model(cfg), data)
    np.testing.assert_array_equal(held.inputs, data.test[:1])
