"""diffusers models measured through diffusers' own scheduler.step loop, against rdlens's sampler."""

import sys

import numpy as np
import pytest
import torch

from rdlens import ddpm
from rdlens.errors import ConfigError

diffusers = pytest.importorskip("diffusers", reason='the diffusers extra is not installed: pip install "rdlens[diffusers]"')
from rdlens import diffusers_adapter as A  # noqa: E402

T = 30


def _unet(seed=0):
    torch.manual_seed(seed)
    return diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                 block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4).eval()


def _paper_scheduler(**kw):
    return diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="linear", variance_type="fixed_large",
                                   clip_sample=False, **kw)


def test_diffusers_own_loop_and_rdlens_sampler_agree_on_samples_and_per_step_norms():
    """Same model, same seed: diffusers draws x_T and then one noise per step (t > 0) from the
    generator exactly as rdlens's sampler does, so the two runs are the same process."""
    unet, shape = _unet(), (3, 1, 8, 8)
    sched = _paper_scheduler()
    sched.set_timesteps(T)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=gen)
    with torch.no_grad():
        for t in sched.timesteps:
            x = sched.step(unet(x, t).sample, t, x, generator=gen).prev_sample
    schedule = ddpm.Schedule(T=T)
    ours = ddpm.sample(lambda x, s: unet(x, s).sample, shape, schedule, seed=5)
    torch.testing.assert_close(ours.samples, x, rtol=1e-4, atol=1e-4)
    measured = A.measure(unet, sched, shape, seed=5, float64=False)
    torch.testing.assert_close(measured.samples.float(), x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(measured.trace.reaction, ours.trace.reaction, rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(measured.trace.diffusion, ours.trace.diffusion, rtol=1e-4, atol=1e-7)
    assert measured.trace.R == pytest.approx(ours.trace.R, rel=1e-3)
    assert measured.settings["differs_from_paper"] == {}


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("beta_schedule", ["linear", "scaled_linear"])
def test_the_noise_diffusers_adds_is_recovered_exactly(prediction_type, clip, beta_schedule):
    """Replaying the generator gives each step's z; the diffusion norm must be sqrt(var_t) ||z||
    whatever the prediction type, clipping or schedule (which only move the mean)."""
    unet, shape = _unet(1), (2, 1, 8, 8)
    sched = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule, clip_sample=clip,
                                    prediction_type=prediction_type)  # variance_type: fixed_small (default)
    measured = A.measure(unet, sched, shape, seed=3, float64=True)
    gen = torch.Generator().manual_seed(3)
    torch.randn(shape, generator=gen, dtype=torch.float64)  # x_T
    ab = torch.cumprod(1 - sched.betas.double(), 0)
    for row, t in enumerate(range(T - 1, 0, -1)):
        z = torch.randn(shape, generator=gen, dtype=torch.float64)
        var = (1 - ab[t - 1]) / (1 - ab[t]) * (1 - ab[t] / ab[t - 1])
        expected = (var.sqrt() * torch.linalg.vector_norm(z, dim=(1, 2, 3))).numpy()
        np.testing.assert_allclose(measured.trace.diffusion_samples[row], expected, rtol=1e-9)
    assert measured.trace.diffusion[-1] == 0 and not measured.trace.counted[-1]
    differs = measured.settings["differs_from_paper"]
    assert differs["variance_type"] == "fixed_small" and (("clip_sample" in differs) == clip)


def test_ddim_through_diffusers_matches_rdlens_ddim():
    unet, shape = _unet(2), (2, 1, 8, 8)
    sched = diffusers.DDIMScheduler(num_train_timesteps=T, beta_schedule="linear", clip_sample=False,
                                    set_alpha_to_one=True)
    for eta in (0.0, 0.5, 1.0):
        measured = A.measure(unet, sched, shape, seed=4, eta=eta, float64=True)
        ours = ddpm.sample(lambda x, s: unet(x.float(), s).sample.double(), shape, ddpm.Schedule(T=T), seed=4,
                           eta=eta, dtype=torch.float64)
        torch.testing.assert_close(measured.samples, ours.samples, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(measured.trace.diffusion[:-1], ours.trace.diffusion[:-1], rtol=1e-5, atol=1e-12)
        np.testing.assert_allclose(measured.trace.reaction, ours.trace.reaction, rtol=1e-4)


def test_without_diffusers_the_adapter_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ConfigError, match=r'pip install "rdlens\[diffusers\]"'):
        A.require()


def test_only_ddpm_and_ddim_schedulers_are_accepted():
    with pytest.raises(ConfigError, match="DDPMScheduler or DDIMScheduler, got EulerDiscreteScheduler"):
        A.measure(_unet(), diffusers.EulerDiscreteScheduler(num_train_timesteps=T), (1, 1, 8, 8))


def test_a_measurement_runs_on_the_policys_threads_and_gives_the_callers_back(monkeypatch):
    """An API user's measurement follows rdlens's thread policy (RDLENS_THREADS, else one),
    whatever torch's count was, and leaves that count as it found it."""
    monkeypatch.setenv("RDLENS_THREADS", "1")
    seen = []

    def model(x, t):
        seen.append(torch.get_num_threads())
        return torch.zeros_like(x)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        A.measure(model, _paper_scheduler(), (1, 1, 4, 4), seed=0)
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_schedule_only_r_reads_a_diffusers_scheduler_as_an_rdlens_schedule():
    """The same linear betas in diffusers (float32) and rdlens (float64) give the same
    schedule-only R to float32 precision."""
    from rdlens.systems.ddpm import controls

    ours = controls.schedule_only_R(ddpm.Schedule(T=1000))
    theirs = controls.schedule_only_R(diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear"))
    assert theirs["R_score"] == pytest.approx(ours["R_score"], rel=1e-6)
    with pytest.raises(ConfigError, match="needs betas, alphas"):
        controls.schedule_only_R(object())
