"""The public code's protocol (the `authors` profile): each quirk rebuilt in rdlens and checked
against an independent computation: a parameter count, a hand replay, a closed form."""

import math

import numpy as np
import pytest
import torch

from rdlens import ddpm, unet
from rdlens.errors import ConfigError
from rdlens.unet_public import AUTHORS_ATTENTION, AUTHORS_CHANNELS


def _authors_config(in_channels: int = 1) -> unet.UNetConfig:
    return unet.UNetConfig(in_channels=in_channels, channels=AUTHORS_CHANNELS, attention=AUTHORS_ATTENTION,
                           groups=8, dropout=0.1, network="public-code")


def test_the_authors_unet_has_their_parameter_count():
    """8,916,321 for one channel: the count of the authors' UNET(Channels=[32, 64, 128, 256,
    256, 192], Attentions at layers 1 and 4, num_groups=8) as the issue measured it."""
    assert unet.n_params(unet.build(_authors_config())) == 8_916_321
    out = unet.build(_authors_config()).eval()(torch.randn(2, 1, 32, 32), torch.tensor([0, 999]))
    assert out.shape == (2, 1, 32, 32)


def test_the_authors_attention_dropout_acts_even_in_evaluation():
    net = unet.build(_authors_config()).eval()
    x, s = torch.randn(1, 1, 32, 32), torch.tensor([500])
    with torch.no_grad():
        torch.manual_seed(0)
        a = net(x, s)
        torch.manual_seed(1)
        b = net(x, s)
    assert not torch.equal(a, b)  # the quirk: sampling depends on torch's global generator


@pytest.mark.parametrize("channels, fragment", [((32, 64, 128, 256, 256), "even number"),
                                                ((32, 64, 128, 256, 200, 192), "up layer 4 receives 256")])
def test_a_layer_list_that_does_not_chain_is_refused(channels, fragment):
    with pytest.raises(ConfigError, match=fragment):
        unet.UNetConfig(channels=channels, attention=(1,), network="public-code")


def _authors_inference(eps_model, x, schedule: ddpm.Schedule, gen: torch.Generator):
    """The authors' sampler, written after their ``inference`` loop: steps t = T-1 .. 1 with
    noise sqrt(beta_t) z, then a final entry built from the t = 1 quantities."""
    b, ab = schedule.betas, schedule.alpha_bars
    drift, diffusion = [], []
    for t in range(schedule.T - 1, 0, -1):
        pred = eps_model(x, torch.full((x.shape[0],), t))
        term1 = 1 / math.sqrt(1 - float(b[t]))
        term2 = float(b[t]) / (math.sqrt(1 - float(ab[t])) * math.sqrt(1 - float(b[t])))
        mean = term1 * x - term2 * pred
        noise = math.sqrt(float(b[t])) * torch.randn(x.shape, generator=gen, dtype=x.dtype)
        drift.append(float(torch.linalg.vector_norm(mean - x)))
        diffusion.append(float(torch.linalg.vector_norm(noise)))
        x = mean + noise
    mean0 = term1 * x - term2 * pred  # stale term1, term2 and pred: those of t = 1
    noise = math.sqrt(float(b[1])) * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    drift.append(float(torch.linalg.vector_norm(mean0 - x)))
    diffusion.append(float(torch.linalg.vector_norm(noise)))
    return np.array(drift), np.array(diffusion)


def test_public_code_last_step_matches_a_replay_of_the_authors_sampler():
    sched = ddpm.Schedule(T=30)
    model = lambda x, s: 0.3 * x + 0.01 * s[:, None, None, None].float()  # noqa: E731
    res = ddpm.sample(model, (1, 1, 8, 8), sched, seed=5, last_step="public-code", dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn((1, 1, 8, 8), generator=gen, dtype=torch.float64)  # x_T, then the noises in order
    drift, diffusion = _authors_inference(model, x, sched, gen)
    np.testing.assert_allclose(res.trace.reaction, drift, rtol=1e-10)
    np.testing.assert_allclose(res.trace.diffusion, diffusion, rtol=1e-10)
    assert res.trace.counted.all()
    plain = ddpm.sample(model, (1, 1, 8, 8), sched, seed=5, dtype=torch.float64)
    assert torch.equal(plain.samples, res.samples)  # the quirk changes the measurement only
    assert not plain.trace.counted[-1] and plain.trace.R != res.trace.R


def test_public_code_training_settings_are_adam_and_an_ema_without_warm_up():
    from rdlens import images

    data = images.load("digits")[:16]
    cfg = ddpm.config_for("default", unet={"channels": (8, 16)}, schedule={"T": 20}, steps=1, batch_size=4,
                          optimizer="adam", ema=0.9999, ema_warmup=False, grad_clip=0.0)
    torch.manual_seed(cfg.seed)
    init = [p.detach().clone() for p in unet.build(cfg.unet).parameters()]
    res = ddpm.train(cfg, data)
    for p0, p1, pe in zip(init, res.model.parameters(), res.ema_model.parameters()):
        torch.testing.assert_close(pe, 0.9999 * p0 + 0.0001 * p1.detach(), rtol=0, atol=1e-7)
    with pytest.raises(ConfigError, match="optimizer must be one of"):
        ddpm.config_for("default", optimizer="sgd")


def test_unit_pixels_are_in_zero_one_with_zero_padding():
    from rdlens import systems

    ddpm_system = systems.get("ddpm")
    cfg = ddpm_system.build({"dataset": "digits", "pixels": "unit", "max_images": 8})
    data = ddpm_system.prepare(cfg, "cpu")
    assert float(data.min()) == 0.0 and float(data.max()) <= 1.0
    assert float(data[:, :, :2].abs().max()) == 0.0  # the 2-pixel border


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_one_value_warm_up_and_zero_first_cprev_match_a_hand_replay_of_the_authors_generation():
    """The authors' generate_sequence warms up on seed_data.size(1) = 1 value, then feeds its
    predictions back; their metric takes C_prev = 0 at the first recorded step. Replayed here
    in NumPy with the model's own weights (gate order i, f, g, o as in torch)."""
    from rdlens import lstm
    from rdlens.sequences import make_sequences

    cfg = lstm.config_for("paper", "sine", data={"n_sequences": 10, "length": 20}, steps=3, eval_mode="free",
                          generate_steps=6, warmup="first-value", first_cprev="zero", bias="single", eval_sequences=2)
    data = make_sequences(cfg.data)
    model = lstm.train(cfg, data).model
    assert float(model.lstm.bias_hh_l0.abs().max()) == 0.0  # single bias: b_hh never moves
    ev = lstm.evaluate(cfg, model, data)
    w_ih, w_hh = model.lstm.weight_ih_l0.detach().double().numpy(), model.lstm.weight_hh_l0.detach().double().numpy()
    b = (model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0).detach().double().numpy()
    w_out, b_out = model.readout.weight.detach().double().numpy(), model.readout.bias.detach().double().numpy()
    H = cfg.hidden
    for seq in range(2):
        h, c = np.zeros(H), np.zeros(H)

        def cell(x, h, c):
            z = w_ih[:, 0] * x + w_hh @ h + b
            i, f, g, o = _sigmoid(z[:H]), _sigmoid(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), _sigmoid(z[3 * H:])
            c_new = f * c + i * g
            return o * np.tanh(c_new), c_new, i, f, g

        h, c, *_ = cell(data.test[seq, 0], h, c)  # the one warm-up value
        x = float((w_out @ h + b_out)[0])
        react, diff = [], []
        for t in range(cfg.generate_steps):
            c_prev = np.zeros(H) if t == 0 else c
            h, c, i, f, g = cell(x, h, c)
            react.append(np.linalg.norm(i * g))
            diff.append(np.linalg.norm((1 - f) * c_prev))
            x = float((w_out @ h + b_out)[0])
        np.testing.assert_allclose(ev.trace.reaction_samples[:, seq], react, rtol=2e-5, atol=1e-7)
        np.testing.assert_allclose(ev.trace.diffusion_samples[:, seq], diff, rtol=2e-5, atol=1e-7)
    assert ev.trace.diffusion[0] == 0.0


def test_public_code_sequences_are_the_notebooks_formulas():
    from rdlens.sequences import SequenceConfig, lorenz_rhs, make_sequences

    cfg = SequenceConfig(dataset="sine", n_sequences=5, length=7, form="public-code", seed=4)
    seqs = make_sequences(cfg)
    rng = np.random.default_rng(4)
    freq, phase = rng.uniform(0.5, 2.0, 5), rng.uniform(0, 2 * np.pi, 5)
    t = np.linspace(0, 10, 7)
    want = np.sin(freq[:, None] * t + phase[:, None])  # no 2 pi, not standardised
    np.testing.assert_allclose(np.concatenate([seqs.train, seqs.test]), want, rtol=1e-12)
    lor = make_sequences(SequenceConfig(dataset="lorenz", n_sequences=5, length=4, form="public-code", seed=4))
    y = np.random.default_rng(4).standard_normal((5, 3))
    raw = []
    for _ in range(4):
        y = y + lorenz_rhs()(y) * 0.02
        raw.append(y[:, 0])
    raw = np.array(raw).T
    allx = np.concatenate([lor.train, lor.test])
    np.testing.assert_allclose(allx, (raw - raw.mean()) / raw.std(), rtol=1e-10)
    with pytest.raises(ConfigError, match="no Van der Pol"):
        SequenceConfig(dataset="vanderpol", form="public-code")


def test_the_authors_profile_takes_the_public_codes_side_of_every_difference():
    """Every row of `--profile authors` resolves, and each listed difference is switched to the
    public code's side (Van der Pol keeps rdlens's data: the public code has none)."""
    from rdlens import public_code
    from rdlens import reproduce as R
    from rdlens.run import config_json

    profile = R.load_profile("authors")
    configs = []
    for row in R.profile_rows(profile):
        plan = R.plan_row(row, profile, 0, "/nonexistent")
        config = plan.config if plan.config is not None else plan.system.build(R.row_values(row, profile, 0, None))
        configs.append((row.id, config_json(plan.system, config)))
    text = public_code.markdown(configs)
    for d in public_code.DIFFERENCES:
        line = next(line for line in text.splitlines() if line.startswith(f"| {d.area} |"))
        expected = d.fixed if not d.path else "mixed" if d.path == ("data", "form") else "public code"
        assert line.split("|")[5].strip() == expected, d.area
    ddpm_cfg = dict(configs)["ddpm-mnist"]
    assert ddpm_cfg["unet"]["network"] == "public-code" and ddpm_cfg["steps"] == 2340


def test_rows_written_before_a_switch_existed_count_as_rdlens():
    from rdlens import public_code

    text = public_code.markdown([("rd-spot", {"system": "rd", "model": {"F": 0.029, "size": 200}})])
    line = next(line for line in text.splitlines() if line.startswith("| RD states and diffusion norm |"))
    assert line.split("|")[5].strip() == "rdlens"
    assert "| LSTM warm-up |" in text and "no rows" in text


def test_a_tiny_run_with_every_ddpm_quirk_on_goes_end_to_end(tmp_path, capsys):
    import json

    from rdlens.cli import main

    args = ["ddpm", "--network", "public-code", "--channels", "32,64,128,256,256,192", "--attention", "1,4",
            "--steps", "2", "--batch-size", "2", "--T", "10", "--samples", "2", "--pixels", "unit",
            "--last-step", "public-code", "--optimizer", "adam", "--no-ema-warmup", "--grad-clip", "0",
            "--max-images", "16", "--quiet", "--json", "--device", "cpu", "--out", str(tmp_path)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps_counted"] == 10 and "public-code quirk" in summary["last_step"]
    samples = np.load(tmp_path / summary["run_dir"].split("/")[-1] / "samples.npz")["samples"]
    assert samples.shape == (2, 1, 32, 32)


def test_table1_footnote_says_what_each_ddpm_row_did_with_the_last_step(tmp_path):
    """A row that counts the noise-free last step (the public code's quirk) is named as such,
    not covered by a blanket 'DDPM rows exclude the last reverse step'."""
    from rdlens.balance import BalanceTrace
    from rdlens.report import table

    def trace(counted_last: bool) -> BalanceTrace:
        counted = np.ones(4, dtype=bool)
        counted[-1] = counted_last
        return BalanceTrace.from_series(np.ones(4), np.array([1.0, 1.0, 1.0, 0.0]), counted=counted)

    info = {"seeds": [0], "rows": [
        {"id": "ddpm-ours", "system": "ddpm", "title": "DDPM", "setting": "s", "data": "d", "status": "ran",
         "reason": None, "paper": None},
        {"id": "ddpm-authors", "system": "ddpm", "title": "DDPM", "setting": "s", "data": "d", "status": "ran",
         "reason": None, "paper": None}]}
    recs = table.records(info, {"ddpm-ours": [trace(False)], "ddpm-authors": [trace(True)]})
    md = table.table_markdown(recs, "t")
    assert "ddpm-ours exclude the last reverse step" in md
    assert "ddpm-authors count it, as the public code does" in md
    assert table.last_step_note([r for r in recs if r["row"] == "ddpm-ours"]).count("count it") == 0


def test_the_public_codes_start_square_sits_one_cell_before_the_centre():
    """square_shift = 1 puts Pearson's square where the authors' GrayScott.__init__ does: the
    ghost-padded (N+3)^2 array with U[mid-r:mid+r, mid-r:mid+r] = 0.5, mid = N // 2, r = 10."""
    from rdlens import grayscott as gs

    N = 200
    padded = np.zeros((N + 3, N + 3))
    padded[1:-1, 1:-1] = 1.0
    padded[N // 2 - 10 : N // 2 + 10, N // 2 - 10 : N // 2 + 10] = 0.5
    model = gs.GrayScott(size=N + 1, length=2.01)
    u, _ = gs.pearson_init(model, 0, noise=0.0, shift=1)
    np.testing.assert_array_equal(u, padded[1:-1, 1:-1])
    centred, _ = gs.pearson_init(model, 0, noise=0.0)
    assert not np.array_equal(centred, u) and np.array_equal(np.roll(centred, (-1, -1), (0, 1)), u)
    with pytest.raises(ConfigError, match=r"square_shift must be in \[0, 90\] cells"):
        gs.RDRun(model=model, square_shift=91)


def _public_forward(u, v, p, t_steps, threshold):
    """The authors' GrayScott.forward loop on its ghost-padded arrays: measure every state,
    stop once step > 100 (counted from 0) and mean |dV| < threshold, the stopping state kept."""
    n = u.shape[0]
    U, V = np.zeros((n + 2, n + 2)), np.zeros((n + 2, n + 2))
    U[1:-1, 1:-1], V[1:-1, 1:-1] = u, v

    def wrap(a):
        a[0, :], a[-1, :], a[:, 0], a[:, -1] = a[-2, :], a[1, :], a[:, -2], a[:, 1]

    def lap(a):
        return (a[2:, 1:-1] + a[1:-1, 2:] + a[:-2, 1:-1] + a[1:-1, :-2] - 4 * a[1:-1, 1:-1]) / p.h**2

    wrap(U), wrap(V)
    states = [(U[1:-1, 1:-1].copy(), V[1:-1, 1:-1].copy())]
    for step in range(t_steps):
        V_prev = V[1:-1, 1:-1].copy()
        Uv, Vv = U[1:-1, 1:-1], V[1:-1, 1:-1]
        uvv = Uv * Vv * Vv
        dU = p.dt * (p.Du * lap(U) - uvv + p.F * (1 - Uv))
        dV = p.dt * (p.Dv * lap(V) + uvv - (p.F + p.k) * Vv)
        U[1:-1, 1:-1] += dU
        V[1:-1, 1:-1] += dV
        wrap(U), wrap(V)
        states.append((U[1:-1, 1:-1].copy(), V[1:-1, 1:-1].copy()))
        if step > 100 and np.mean(np.abs(V[1:-1, 1:-1] - V_prev)) < threshold:
            break
    return states


def test_the_public_codes_early_stop_ends_where_the_authors_loop_ends():
    """stop_tol with stop_measure mean-abs and stop_after 101 stops at the step the authors'
    forward() breaks at, with the same measured states (a transcription of their loop)."""
    from rdlens import grayscott as gs

    p = gs.GrayScott(size=21, length=0.21, F=0.0545)
    u, v = gs.pearson_init(p, 4)
    states = _public_forward(u, v, p, 400, threshold=1e-20)
    assert 102 < len(states) - 1 < 400  # the rule fires inside the run, not at its first chance
    cfg = gs.RDRun(model=p, steps=400, seed=4, norms="public-code", stop_tol=1e-20, stop_measure="mean-abs",
                   stop_after=101)
    res = gs.run(p, cfg.steps, cfg.seed, norms=cfg.norms, stop_tol=cfg.stop_tol, stop_after=cfg.stop_after)
    assert res.stopped_early and res.steps == len(states) - 1
    want = np.array([gs.public_code_norms(a, b, p) for a, b in states])
    np.testing.assert_allclose(res.trace.reaction, want[:, 0], rtol=1e-9)
    np.testing.assert_allclose(res.trace.diffusion, want[:, 1], rtol=1e-9)
    with pytest.raises(ConfigError, match="early stop measures the change of v as mean-abs"):
        gs.RDRun(norms="public-code", stop_tol=1e-6)
    with pytest.raises(ConfigError, match="as rms"):
        gs.RDRun(stop_tol=1e-6, stop_measure="mean-abs")


def test_the_public_codes_float32_schedule_is_its_scheduler():
    """schedule_dtype float32 gives the authors' DDPM_Scheduler values (linspace and cumprod in
    float32); float64 gives the same formula in double precision."""
    f32 = ddpm.Schedule(dtype="float32")
    beta = torch.linspace(1e-4, 0.02, 1000)
    assert torch.equal(f32.alpha_bars, torch.cumprod(1 - beta, dim=0).double())
    assert torch.equal(f32.betas, beta.double())
    f64 = ddpm.Schedule()
    np.testing.assert_allclose(f64.alpha_bars.numpy(), np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-13)
    assert 0 < float((f32.alpha_bars - f64.alpha_bars).abs().max()) < 1e-6


def test_epoch_batches_are_permutations_drawn_again_identically_after_a_resume():
    """batches = epochs: each epoch a permutation cut into full batches (the rest dropped, as
    DataLoader(drop_last=True)); the draw depends on (seed, step) only."""
    cfg = ddpm.DDPMConfig(batch_size=4, batches="epochs", seed=3)
    draw = ddpm.batch_indices(cfg, 10, torch.Generator())
    first = torch.cat([draw(s) for s in range(2)])
    assert len(set(first.tolist())) == 8 and first.max() < 10  # two full batches, no repeats, two dropped
    second = torch.cat([draw(s) for s in range(2, 4)])
    assert len(set(second.tolist())) == 8 and not torch.equal(first, second)
    again = ddpm.batch_indices(cfg, 10, torch.Generator())
    assert torch.equal(again(3), draw(3)) and torch.equal(again(0), first[:4])
    with pytest.raises(ConfigError, match="batch_size <= the 3 training images, got 4"):
        ddpm.batch_indices(cfg, 3, torch.Generator())


def test_reproduce_refuses_epoch_batches_larger_than_the_data_before_any_row_runs():
    """The DDPM's pre-flight check (System.validate, run for every row before the first) names
    the data set's size; it raised a NameError before ConfigError was imported there."""
    from rdlens import systems

    cfg = ddpm.DDPMConfig(dataset="digits", batch_size=1024, batches="epochs", max_images=100)
    with pytest.raises(ConfigError, match="batch_size <= the 100 training images, got 1024"):
        systems.get("ddpm").validate(cfg)
