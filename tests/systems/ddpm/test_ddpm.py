"""DDPM: schedule closed forms, forward noising, the reverse step, and the sampler with an
exact (oracle) denoiser, whose trace has closed-form values."""

import json
import math

import numpy as np
import pytest
import torch

from rdlens import ddpm, images
from rdlens.cli import main
from rdlens.errors import ConfigError


def test_linear_schedule_closed_forms():
    s = ddpm.Schedule()
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    assert torch.all(s.betas[1:] > s.betas[:-1])  # increases with t (the paper's §2.3 erratum)
    np.testing.assert_allclose(s.alphas.numpy(), 1 - np.linspace(1e-4, 0.02, 1000))
    np.testing.assert_allclose(s.alpha_bars.numpy(), np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-12)
    ab = s.alpha_bars.numpy()
    post = s.betas.numpy()[1:] * (1 - ab[:-1]) / (1 - ab[1:])
    np.testing.assert_allclose(s.posterior_variance.numpy()[1:], post, rtol=1e-12)
    assert s.posterior_variance[0].item() == 0.0
    assert s.alpha_bars[-1].item() < 1e-4  # x_T is close to pure noise


def test_cosine_schedule_follows_its_definition():
    s = ddpm.Schedule(T=100, kind="cosine")
    f = lambda t: math.cos((t / 100 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 50, 99):
        assert s.alpha_bars[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-9)


def test_forward_noising_has_the_closed_form_mean_and_variance():
    s = ddpm.Schedule()
    x0 = torch.full((20000, 4), 0.7, dtype=torch.float64)
    idx = torch.full((20000,), 300)
    gen = torch.Generator().manual_seed(0)
    xt = s.q_sample(x0, idx, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    ab = s.alpha_bars[300].item()
    assert xt.mean().item() == pytest.approx(math.sqrt(ab) * 0.7, abs=0.01)
    assert xt.var().item() == pytest.approx(1 - ab, rel=0.02)


def test_one_reverse_step_matches_the_formula():
    s = ddpm.Schedule(T=5)
    eps_const = torch.full((2, 1, 2, 2), 0.3)
    model = lambda x, t: eps_const  # noqa: E731
    res = ddpm.sample(model, (2, 1, 2, 2), s, seed=3, dtype=torch.float64)
    # redo the first step (t = T) by hand with the same random stream
    gen = torch.Generator().manual_seed(3)
    x = torch.randn((2, 1, 2, 2), generator=gen, dtype=torch.float64)
    z = torch.randn((2, 1, 2, 2), generator=gen, dtype=torch.float64)
    b, a, ab = s.betas[4].item(), s.alphas[4].item(), s.alpha_bars[4].item()
    mu = (x - b / math.sqrt(1 - ab) * 0.3) / math.sqrt(a)
    tr = res.trace
    np.testing.assert_allclose(tr.reaction_samples[0], torch.linalg.vector_norm(mu - x, dim=(1, 2, 3)).numpy())
    np.testing.assert_allclose(tr.diffusion_samples[0], math.sqrt(b) * torch.linalg.vector_norm(z, dim=(1, 2, 3)).numpy())
    assert tr.extra["score"][0] == pytest.approx(b / (math.sqrt(a) * math.sqrt(1 - ab)) * 0.3 * 2)
    assert tr.extra["eps_norm"][0] == pytest.approx(0.6)
    assert list(tr.extra["t"]) == [5, 4, 3, 2, 1]


def test_sampler_passes_zero_based_indices_from_T_minus_1_to_0():
    seen = []

    def model(x, t):
        seen.append(t.clone())
        return torch.zeros_like(x)

    ddpm.sample(model, (3, 2), ddpm.Schedule(T=4), seed=0)
    assert [t.tolist() for t in seen] == [[3] * 3, [2] * 3, [1] * 3, [0] * 3]


def test_oracle_for_one_point_data_returns_the_point_and_the_closed_form_diffusion():
    s = ddpm.Schedule()
    point = torch.linspace(-1, 1, 1024).reshape(1, 1, 32, 32)
    res = ddpm.sample(ddpm.one_point_oracle(point, s), (8, 1, 32, 32), s, seed=0, dtype=torch.float64)
    assert (res.samples - point).abs().max().item() < 1e-9
    tr = res.trace
    assert not tr.counted[-1] and tr.diffusion[-1] == 0.0
    # M_diff = mean_{t=T..2} sqrt(beta_t) * E||z||, E||z|| ~ sqrt(D): 0.0947 sqrt(D) within 1 %
    expected = np.sqrt(np.linspace(1e-4, 0.02, 1000)[1:]).mean() * math.sqrt(1024)
    assert expected / math.sqrt(1024) == pytest.approx(0.0947, abs=1e-4)
    assert tr.M_diff == pytest.approx(expected, rel=0.01)
    assert tr.R < 0.1


def test_trace_saves_with_the_ddpm_columns(tmp_path):
    res = ddpm.sample(lambda x, t: torch.zeros_like(x), (2, 3), ddpm.Schedule(T=3), seed=0)
    header = res.trace.save(tmp_path / "trace.csv").read_text().splitlines()[0]
    assert header == "step,tau,reaction,diffusion,t,score,eps_norm,counted"


def test_loss_is_zero_for_a_perfect_predictor_and_positive_otherwise():
    s = ddpm.Schedule()
    x0 = torch.zeros(16, 1, 4, 4)
    # with x0 = 0, x_s = sqrt(1 - abar_s) eps, so eps = x_s / sqrt(1 - abar_s) exactly
    oracle = ddpm.one_point_oracle(x0[:1], s)
    assert ddpm.loss(oracle, s, x0, torch.Generator().manual_seed(0)).item() < 1e-10
    assert ddpm.loss(lambda x, t: torch.zeros_like(x), s, x0, torch.Generator().manual_seed(0)).item() > 0.5


@pytest.mark.parametrize("kwargs, fragment", [({"T": 1}, "T must be"), ({"kind": "quad"}, "schedule must be"),
                                              ({"beta_start": 0.1, "beta_end": 0.01}, "beta_start <= beta_end")])
def test_bad_schedules_are_refused(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ddpm.Schedule(**kwargs)


TINY = ["--steps", "6", "--T", "20", "--samples", "3", "--channels", "8,16", "--batch-size", "4",
        "--checkpoint-every", "3", "--quiet", "--device", "cpu"]


def test_tiny_end_to_end_ddpm_run_on_the_offline_default(tmp_path, capsys):
    assert main(["ddpm", *TINY, "--grid-every", "3", "--out", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    run = tmp_path / summary["run_dir"].split("/")[-1]
    for name in ("checkpoint.pt", "samples.png", "trace.csv", "trace_samples.npz", "balance.png", "summary.json",
                 "config.json", "manifest.json", "losses.csv", "grid-step3.png", "grid-step6.png"):
        assert (run / name).exists(), name
    assert summary["steps_in_trace"] == 20 and summary["steps_counted"] == 19 and summary["T"] == 20
    assert "no noise" in summary["last_step"] and summary["image_dim"] == 1024
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 6 and "ema" in state
    # resume an interrupted run (no summary.json): training is already complete, sampling redone
    (run / "summary.json").unlink()
    assert main(["ddpm", "--resume", str(run), "--quiet", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["resumed_from_step"] == 6 and again["R"] == pytest.approx(summary["R"])


def test_ddpm_resume_matches_an_uninterrupted_run(tmp_path):
    cfg = ddpm.config_for("default", unet={"channels": (8, 16)}, schedule={"T": 20}, steps=6, batch_size=4,
                          checkpoint_every=2)
    straight, resumed = _straight_and_resumed(cfg, tmp_path)
    assert resumed.resumed_from == 4 and resumed.losses == straight.losses
    for p, q in zip(straight.ema_model.parameters(), resumed.ema_model.parameters()):
        assert torch.equal(p, q)


def test_cosine_learning_rate_follows_its_closed_form_and_resumes_bit_identically(tmp_path):
    cfg = ddpm.config_for("default", unet={"channels": (8, 16)}, schedule={"T": 20}, steps=6, batch_size=4,
                          checkpoint_every=2, lr=2e-3, lr_schedule="cosine")
    rate = ddpm.lr_at(cfg)
    assert [rate(s) for s in (0, 3, 6)] == pytest.approx([2e-3, 1e-3, 0.0], abs=1e-15)
    assert rate(1) == pytest.approx(2e-3 * (1 + math.cos(math.pi / 6)) / 2, rel=1e-12)
    assert ddpm.lr_at(ddpm.config_for("default", steps=6)) is None
    straight, resumed = _straight_and_resumed(cfg, tmp_path)
    assert resumed.resumed_from == 4 and resumed.losses == straight.losses
    for p, q in zip(straight.ema_model.parameters(), resumed.ema_model.parameters()):
        assert torch.equal(p, q)
    constant = ddpm.train(ddpm.config_for("default", unet={"channels": (8, 16)}, schedule={"T": 20}, steps=6,
                                          batch_size=4, lr=2e-3), images.load("digits")[:32])
    assert constant.losses[0] == straight.losses[0] and constant.losses[1:] != straight.losses[1:]


def test_bfloat16_training_is_mixed_precision_close_to_float32_and_resumes_bit_identically(tmp_path):
    """bfloat16 autocasts only the forward pass: the losses (same batches) are float32's to within
    bfloat16's ~3 digits but not equal, and weights and EMA stay float32. The first loss is equal:
    the U-Net's output layer starts at zero."""
    small = dict(unet={"channels": (8, 16)}, schedule={"T": 20}, steps=6, batch_size=4, checkpoint_every=2)
    mixed_cfg = ddpm.config_for("default", precision="bfloat16", **small)
    straight, resumed = _straight_and_resumed(mixed_cfg, tmp_path)
    assert resumed.resumed_from == 4 and resumed.losses == straight.losses
    full = ddpm.train(ddpm.config_for("default", **small), images.load("digits")[:32])
    assert straight.losses[0] == full.losses[0] and straight.losses[1:] != full.losses[1:]
    assert straight.losses == pytest.approx(full.losses, rel=2e-2)
    assert all(math.isfinite(v) for v in straight.losses)
    assert {p.dtype for p in straight.ema_model.parameters()} == {torch.float32}
    with pytest.raises(ConfigError, match="precision must be one of float32, bfloat16, auto, got 'float16'"):
        ddpm.config_for("default", precision="float16")


def test_bfloat16_on_a_cpu_without_bfloat16_instructions_warns_in_one_line(monkeypatch, capsys, tmp_path):
    from rdlens.cli import main

    monkeypatch.setattr(ddpm, "native_bfloat16", lambda device: False)
    small = dict(unet={"channels": (8, 16)}, schedule={"T": 20}, steps=1, batch_size=4)
    with pytest.warns(RuntimeWarning, match="emulated and slower than float32: set precision = float32"):
        ddpm.train(ddpm.config_for("default", precision="bfloat16", **small), images.load("digits")[:8])
    assert main(["ddpm", "--precision", "bfloat16", "--channels", "8,16", "--T", "20", "--steps", "1",
                 "--batch-size", "4", "--samples", "2", "--out", str(tmp_path), "--quiet"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == ["rdlens ddpm: warning: precision bfloat16 on a CPU without bfloat16 instructions "
                      "(AVX512-BF16 or AMX) is emulated and slower than float32: set precision = float32 "
                      "(--precision float32)"]


def test_auto_precision_is_bfloat16_only_where_native_and_a_resumed_run_keeps_what_it_started_with(
        monkeypatch, tmp_path, recwarn):
    """auto trains exactly as bfloat16 where bfloat16 is native and exactly as float32 elsewhere
    (without the emulation warning); a run begun where it is native and resumed where it is not
    continues in bfloat16, matching the uninterrupted bfloat16 run."""
    small = dict(unet={"channels": (8, 16)}, schedule={"T": 20}, steps=6, batch_size=4, checkpoint_every=2)
    data = images.load("digits")[:32]
    runs = {p: ddpm.train(ddpm.config_for("default", precision=p, **small), data) for p in ("float32", "bfloat16")}
    recwarn.clear()  # the explicit bfloat16 run warns on a CPU where it is emulated
    auto = ddpm.config_for("default", precision="auto", **small)
    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(ddpm, "native_bfloat16", lambda device, native=native: native)
        got = ddpm.train(auto, data)
        assert got.precision == expected and got.losses == runs[expected].losses
    assert runs["bfloat16"].losses != runs["float32"].losses
    assert not [w for w in recwarn if "emulated" in str(w.message)]
    monkeypatch.setattr(ddpm, "native_bfloat16", lambda device: True)
    straight, resumed = _straight_and_resumed(
        auto, tmp_path, between=lambda: monkeypatch.setattr(ddpm, "native_bfloat16", lambda device: False))
    assert resumed.resumed_from == 4 and resumed.precision == "bfloat16"
    assert resumed.losses == straight.losses == runs["bfloat16"].losses


def test_unknown_learning_rate_schedule_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="lr_schedule must be one of constant, cosine, got 'step'"):
        ddpm.config_for("default", lr_schedule="step")


def _straight_and_resumed(cfg, tmp_path, between=None):
    """Train ``cfg`` uninterrupted, and again interrupted after step 5 and resumed."""
    from rdlens import images

    data = images.load("digits")[:32]
    straight = ddpm.train(cfg, data, str(tmp_path / "a"))
    count = []

    def stop_at_5(n):
        count.append(n)
        if sum(count) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ddpm.train(cfg, data, str(tmp_path / "b"), progress=stop_at_5)
    if between is not None:
        between()
    return straight, ddpm.train(cfg, data, str(tmp_path / "b"), resume=True)


@pytest.mark.parametrize("args, fragment", [(["--steps", "-1"], "steps must be"), (["--T", "1"], "T must be"),
                                            (["--channels", "12,16"], "not divisible by groups"),
                                            (["--ema", "1.5"], "ema must be"),
                                            (["--dataset", "cifar10", "--data-dir", "/nonexistent"], "data download cifar10")])
def test_ddpm_bad_input_exits_2_before_work(tmp_path, capsys, args, fragment):
    assert main(["ddpm", "--quiet", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_ddpm_resume_with_dropout_matches_an_uninterrupted_run(tmp_path):
    """Dropout draws from torch's global generator: the checkpoint must carry it, or a resumed
    run (like the paper preset's, dropout 0.1) drifts from the uninterrupted one."""
    cfg = ddpm.config_for("default", unet={"channels": (8, 16), "dropout": 0.3}, schedule={"T": 20}, steps=6,
                          batch_size=4, checkpoint_every=2)
    # whatever the process did with torch's global generator in between
    straight, resumed = _straight_and_resumed(cfg, tmp_path, between=lambda: torch.manual_seed(12345))
    assert resumed.resumed_from == 4 and resumed.losses == straight.losses
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


def test_ddim_with_eta_1_is_the_ddpm_sampler_with_the_posterior_sigma():
    """Song et al. (2021): DDIM's update at eta = 1 is DDPM's ancestral step with
    sigma_t^2 = the posterior variance; same seed, same draws: the same samples and norms."""
    schedule = ddpm.Schedule(T=50)

    def net(x, s):  # any smooth eps model: the identity holds for every eps
        return torch.tanh(0.7 * x.roll(1, dims=-1) + 0.002 * s.view(-1, 1, 1, 1).to(x))

    a = ddpm.sample(net, (3, 1, 8, 8), schedule, seed=4, sigma="posterior", dtype=torch.float64)
    b = ddpm.sample(net, (3, 1, 8, 8), schedule, seed=4, eta=1.0, dtype=torch.float64)
    torch.testing.assert_close(b.samples, a.samples, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b.trace.reaction, a.trace.reaction, rtol=1e-8)
    np.testing.assert_allclose(b.trace.diffusion, a.trace.diffusion, rtol=1e-12)
    np.testing.assert_allclose(b.trace.extra["score"], a.trace.extra["score"], rtol=1e-8)


def test_ddim_with_eta_0_adds_no_noise_and_depends_on_x_T_alone():
    schedule = ddpm.Schedule(T=30)
    point = torch.full((1, 1, 8, 8), 0.3)
    oracle = ddpm.one_point_oracle(point, schedule)
    res = ddpm.sample(oracle, (2, 1, 8, 8), schedule, seed=1, eta=0.0, dtype=torch.float64)
    assert np.all(res.trace.diffusion == 0)
    # the exact denoiser of one-point data maps every start onto the point, noise or not
    torch.testing.assert_close(res.samples, point.double().expand(2, -1, -1, -1), rtol=0, atol=1e-6)
    again = ddpm.sample(oracle, (2, 1, 8, 8), schedule, seed=1, eta=0.0, dtype=torch.float64)
    assert torch.equal(res.samples, again.samples)


@pytest.mark.parametrize("eta", [-0.1, 1.5, True, "half"])
def test_ddim_eta_outside_0_1_is_refused(eta):
    with pytest.raises(ConfigError, match="DDIM eta must be a number in \\[0, 1\\]"):
        ddpm.sample(ddpm.one_point_oracle(torch.zeros(1, 1, 4, 4), ddpm.Schedule(T=5)), (1, 1, 4, 4),
                    ddpm.Schedule(T=5), eta=eta)


def test_bfloat16_sampling_runs_only_the_network_in_bfloat16():
    """precision = bfloat16 is the float32 sampler with a network that computes in bfloat16 and
    returns float32: the same samples and norms bit for bit, and close to (not equal to) float32."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    schedule = ddpm.Schedule(T=20)

    def net(x, s):
        return conv(x)

    def by_hand(x, s):
        return torch.nn.functional.conv2d(x.bfloat16(), conv.weight.bfloat16(), conv.bias.bfloat16(), padding=1).float()

    shape = (3, 1, 8, 8)
    mixed = ddpm.sample(net, shape, schedule, seed=4, precision="bfloat16")
    manual = ddpm.sample(by_hand, shape, schedule, seed=4)
    full = ddpm.sample(net, shape, schedule, seed=4)
    assert mixed.samples.dtype == torch.float32 and torch.equal(mixed.samples, manual.samples)
    assert mixed.trace.R == manual.trace.R and mixed.trace.R != full.trace.R
    assert mixed.trace.R == pytest.approx(full.trace.R, rel=1e-2)
    with pytest.raises(ConfigError, match="precision must be one of float32, bfloat16, auto, got 'half'"):
        ddpm.sample(net, shape, schedule, precision="half")


def test_auto_sampling_precision_is_bfloat16_only_where_native(monkeypatch):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)
    schedule, shape = ddpm.Schedule(T=10), (2, 1, 8, 8)
    runs = {p: ddpm.sample(lambda x, s: conv(x), shape, schedule, seed=1, precision=p).trace.R
            for p in ("float32", "bfloat16")}
    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(ddpm, "native_bfloat16", lambda device, native=native: native)
        assert ddpm.sample(lambda x, s: conv(x), shape, schedule, seed=1, precision="auto").trace.R == runs[expected]


def test_quality_samples_are_drawn_in_batches_of_the_row_samples_with_their_own_noise():
    from rdlens.systems.ddpm.system import quality_batches

    cfg = ddpm.config_for("default", samples=64, quality_samples=256, seed=2)
    assert quality_batches(cfg) == [(64, 30_000), (64, 30_001), (64, 30_002)]
    assert quality_batches(ddpm.config_for("default", samples=64, quality_samples=100)) == [(36, 10_000)]
    assert quality_batches(ddpm.config_for("default", samples=64, quality_samples=64)) == []
    assert quality_batches(ddpm.config_for("default", samples=64)) == []


def test_quality_is_judged_on_quality_samples_images_and_r_on_the_row_samples_alone(tmp_path, capsys):
    """The judged images are the row's samples and the extra batches (redrawn here from the
    checkpoint with their seeds); the balance is that of a run without extra samples."""
    from rdlens.systems.ddpm import quality as q
    from rdlens.systems.ddpm.system import quality_batches
    from rdlens.unet import UNet

    runs = {}
    for extra in ("0", "7"):
        out = tmp_path / extra
        assert main(["ddpm", *TINY, "--quality-samples", extra, "--out", str(out), "--json"]) == 0
        runs[extra] = json.loads(capsys.readouterr().out)
    plain, judged = runs["0"], runs["7"]
    assert judged["R"] == plain["R"] and judged["final_R"] == plain["final_R"]
    assert plain["quality"]["images"] == 3 and judged["quality"]["images"] == 7
    run = tmp_path / "7" / judged["run_dir"].split("/")[-1]
    cfg = ddpm.config_for("default", unet={"channels": (8, 16)}, schedule={"T": 20}, samples=3, quality_samples=7)
    model = UNet(cfg.unet)
    model.load_state_dict(torch.load(run / "checkpoint.pt", weights_only=True)["ema"])
    model.eval()
    drawn = [torch.from_numpy(np.load(run / "samples.npz")["samples"])]
    for n, seed in quality_batches(cfg):
        drawn.append(ddpm.sample(model, (3, 1, 32, 32), cfg.schedule, seed=seed).samples[:n])
    expected = q.measure(q.judge("digits", None, tmp_path / "classifiers"), torch.cat(drawn))
    assert judged["quality"]["confident"] == pytest.approx(expected["confident"], abs=1e-12)
    assert judged["quality"]["frechet"] == pytest.approx(expected["frechet"], rel=1e-6)  # summed in another order
    assert judged["quality"]["images"] == sum(len(d) for d in drawn) == 7


def test_forward_flops_of_a_convolution_is_its_closed_form_and_a_unet_scales_with_its_pixels():
    from rdlens.core.torchutil import forward_flops
    from rdlens.systems.ddpm.unet import UNetConfig, image_flops

    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    assert forward_flops(conv, torch.zeros(2, 3, 8, 8)) == 2 * 2 * 3 * 5 * 9 * 8 * 8
    # a U-Net: every convolution and dense layer by its closed form (shapes from hooks), and the
    # middle block's attention, two (pixels x pixels x width) products
    from rdlens.systems.ddpm.unet import Attention, build

    cfg = UNetConfig(channels=(8, 16), attention=(), image_size=16, in_channels=1)
    net, total = build(cfg).eval(), []

    def count(module, args, out):
        if isinstance(module, torch.nn.Conv2d):
            total.append(2 * out.numel() * module.in_channels // module.groups * module.kernel_size[0]
                         * module.kernel_size[1])
        elif isinstance(module, torch.nn.Linear):
            total.append(2 * out.numel() * module.in_features)
        elif isinstance(module, Attention):
            pixels, width = args[0].shape[2] * args[0].shape[3], args[0].shape[1]
            total.append(2 * 2 * pixels * pixels * width)

    for m in net.modules():
        m.register_forward_hook(count)
    with torch.no_grad():
        net(torch.zeros(1, 1, 16, 16), torch.zeros(1, dtype=torch.long))
    assert image_flops(cfg) == sum(total)


def test_a_ddpm_run_counts_the_images_it_samples_and_its_work_orders_rows_by_length():
    from rdlens import systems
    from rdlens.systems.ddpm.system import sampled_images

    # the cpu profile's MNIST row: its 64, tracking points at steps 0 and 4000 (8000 is its own), 3 quality batches
    assert sampled_images(ddpm.config_for("default", samples=64, steps=8000, track_every=4000,
                                          quality_samples=256)) == 64 * 3 + 192
    assert sampled_images(ddpm.config_for("default", samples=64, steps=10000, track_every=2500)) == 64 * 5
    assert sampled_images(ddpm.config_for("default", samples=16, steps=10, grid_every=5)) == 16 * 3
    system = systems.get("ddpm")
    short, long = (system.work(ddpm.config_for("default", steps=n)) for n in (1000, 4000))
    assert 0 < short < long
    assert systems.get("rd").work(None) == 0.0
