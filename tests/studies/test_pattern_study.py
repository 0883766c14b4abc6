"""rdlens patterns: the study end to end on tiny sizes, its run-folder rules and its measures."""

import json
from dataclasses import replace

import numpy as np
import pytest

from rdlens import grayscott, pattern_study as S
from rdlens.cli import main
from rdlens.run import verify

ARGS = ["patterns", "--profile", "smoke", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("patterns")
    assert main([*ARGS, "--out", str(out)]) == 0
    return out / "patterns-smoke"


def test_a_study_writes_every_result_and_its_summary_last(study):
    for name in ("table.md", "table.json", "measures.csv", "patterns.png", "patterns.svg", "distributions.png",
                 "balance.png", "drift.png", "drift.svg"):
        assert (study / name).stat().st_size > 0, name
    assert verify(study) is None
    for stage in ("ground-truth", "ddpm/seed0", "convlstm/seed0"):
        assert verify(study / stage) is None
    table = json.loads((study / "table.json").read_text())
    assert [e["system"] for e in table["systems"]] == list(S.SYSTEMS)
    cfg = S.profile_config("smoke")
    n = {e["system"]: e["n"] for e in table["systems"]}
    settings = len(cfg.setting_pairs)
    assert n["gray-scott"] == settings * cfg.patterns and n["ddpm"] == cfg.ddpm.samples
    assert n["convlstm-1x"] == n["convlstm-long"] == settings * cfg.data.rollouts
    gt = next(e for e in table["systems"] if e["system"] == "gray-scott")
    assert 0.9 < gt["R"]["mean"] < 1.1  # Gray-Scott balances near 1, as in Table 1
    assert len(table["verdicts"]) == 3 and "wavelength" in table["verdicts"][1]


def test_one_seed_says_its_verdicts_are_indicative_and_three_seeds_resample_by_seed(study, tmp_path):
    import csv

    from rdlens.core.balance import bootstrap_interval

    assert "indicative only: 1 training seed" in (study / "table.md").read_text()
    assert "caveat" in json.loads((study / "table.json").read_text())
    assert main([*ARGS, "--out", str(tmp_path), "--seeds", "3"]) == 0
    folder = tmp_path / "patterns-smoke"
    table = json.loads((folder / "table.json").read_text())
    assert "caveat" not in table and "two-stage by training seed" in (folder / "table.md").read_text()
    with open(folder / "measures.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["system"] == "convlstm-1x" and r["wavelength"]]
    assert len({r["seed"] for r in rows}) == 3
    x = [float(r["wavelength"]) for r in rows]
    entry = next(e for e in table["systems"] if e["system"] == "convlstm-1x")
    assert entry["wavelength"] == bootstrap_interval(x, groups=[r["seed"] for r in rows]).as_dict()


def test_each_field_carries_the_r_of_the_run_rollout_or_sample_that_made_it(study):
    import csv

    cfg = S.profile_config("smoke")
    with open(study / "measures.csv") as f:
        rows = list(csv.DictReader(f))
    by = {system: [r for r in rows if r["system"] == system] for system in S.SYSTEMS}
    with np.load(study / "ground-truth" / "truth.npz") as t:
        F, k, seeds, R_all = t["F"], t["k"], t["seed"], t["R_all"]
    # a true run continued one step from its final state: R(tau) of that step is the row's final R
    model = cfg.model_at(float(F[0]), float(k[0]))
    start = grayscott.pearson_spots(model, int(seeds[0]), count=cfg.data.start_squares)
    run = grayscott.run(model, steps=cfg.data.frame_every * cfg.long_frames + 1, init=start)
    assert float(by["gray-scott-long"][0]["final_R"]) == pytest.approx(run.trace.R_tau[-1], rel=1e-6)
    assert float(by["gray-scott-long"][0]["R"]) == R_all[0]
    with np.load(study / "convlstm" / "seed0" / "rollouts.npz") as r:
        reaction, diffusion = r["reaction"], r["diffusion"]
    for j, row in enumerate(by["convlstm-long"]):
        assert float(row["R"]) == pytest.approx(reaction[:, j].mean() / diffusion[:, j].mean(), rel=1e-12)
        assert float(row["final_R"]) == pytest.approx(reaction[-1, j] / diffusion[-1, j], rel=1e-12)
    with np.load(study / "ddpm" / "seed0" / "trace_samples.npz") as z, open(study / "ddpm" / "seed0" / "trace.csv") as f:
        counted = np.array([int(r["counted"]) for r in csv.DictReader(f)], dtype=bool)
        for j, row in enumerate(by["ddpm"]):
            expected = z["reaction"][counted, j].mean() / z["diffusion"][counted, j].mean()
            assert float(row["R"]) == pytest.approx(expected, rel=1e-12)


def test_auc_counts_pairs_and_ties_half():
    assert S.auc([3.0, 2.0], [1.0, 2.0]) == 0.875  # (1 + 1 + 1 + 0.5) / 4
    assert S.auc([5.0], [1.0, 2.0]) == 1.0 and S.auc([0.0], [1.0]) == 0.0


def test_separation_scores_how_well_final_r_tells_steady_from_not():
    rows = [{"system": "ddpm", "steady": True, "R": 1.0, "final_R": 1.0 + d, "residual": 0.01 + d}
            for d in (0.001, 0.002, 0.004)]
    rows += [{"system": "ddpm", "steady": False, "R": 1.2, "final_R": 1.0 + d, "residual": 0.5 + d}
             for d in (0.003, 0.3, 0.5)]
    e, = S.separation(rows)
    assert (e["n_steady"], e["n_other"]) == (3, 3)
    assert e["auc"] == pytest.approx(8 / 9)  # 0.003 beats 0.001 and 0.002 but not 0.004; 0.3 and 0.5 beat all
    x = np.array([r["final_R"] for r in rows])
    y = np.array([r["residual"] for r in rows])
    rank = lambda a: np.argsort(np.argsort(a)).astype(float)  # noqa: E731 - no ties here
    assert e["spearman"] == pytest.approx(np.corrcoef(rank(x), rank(y))[0, 1])
    assert e["R_steady"]["mean"] == 1.0 and e["R_other"]["mean"] == pytest.approx(1.2)
    assert "separates them (AUC 0.89 over 3 steady and 3 other" in S.separation_sentence(e, None)


def test_an_unconditioned_ddpms_figure_says_its_samples_are_judged_at_their_best_setting(study):
    assert "its first samples, judged at the setting of smallest residual" in (study / "patterns.svg").read_text()


def test_the_rollouts_start_where_the_true_runs_start_and_the_lstm_saw_none_of_them(study):
    with np.load(study / "ground-truth" / "truth.npz") as t, np.load(study / "ground-truth" / "trajectories.npz") as tr:
        assert not set(t["seed"].tolist()) & set(tr["seed"].tolist())
        with np.load(study / "convlstm" / "seed0" / "rollouts.npz") as r:
            np.testing.assert_array_equal(r["x"][:, 0], t["x"][:, 0])
            assert r["x"].shape == t["x"].shape


def test_running_the_same_command_again_reuses_every_stage(study, capsys):
    before = (study / "convlstm" / "seed0" / "rollouts.npz").read_bytes()
    assert main([*ARGS, "--out", str(study.parent)]) == 0
    err = capsys.readouterr().err
    assert err.count("reused") == 3 and "running" not in err
    assert (study / "convlstm" / "seed0" / "rollouts.npz").read_bytes() == before


def test_a_study_saved_before_a_setting_existed_continues_with_its_default(study, tmp_path, capsys):
    import shutil

    copy = tmp_path / "patterns-smoke"
    shutil.copytree(study, copy)
    saved = json.loads((copy / "config.json").read_text())
    del saved["train_size"]  # as rdlens wrote it before --train-size
    (copy / "config.json").write_text(json.dumps(saved))
    capsys.readouterr()
    assert main([*ARGS, "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().err.count("reused") == 3
    assert json.loads((copy / "config.json").read_text())["train_size"] == 0
    assert main([*ARGS, "--out", str(tmp_path), "--train-size", "16"]) == 2  # another value is another study
    assert "train_size); add --force" in capsys.readouterr().err


def test_report_rebuilds_the_study_from_its_verified_stages(study, tmp_path, capsys):
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    before = {name: (copy / name).read_bytes() for name in ("table.md", "measures.csv", "patterns.svg")}
    assert main(["report", str(copy)]) == 0
    assert "Turing patterns" in capsys.readouterr().out
    assert {name: (copy / name).read_bytes() for name in before} == before and verify(copy) is None
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["study"] == "patterns" and {"DDPM seed 0", "ConvLSTM seed 0"} <= set(manifest["stages_where"])
    samples = copy / "ddpm" / "seed0" / "samples.npz"
    samples.write_bytes(samples.read_bytes()[:-8] + bytes(8))
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "stage ddpm/seed0 of the patterns study" in err and "samples.npz differs" in err
    assert len(err.splitlines()) == 1


def test_other_settings_in_the_same_folder_need_force(study, capsys):
    assert main([*ARGS, "--out", str(study.parent), "--convlstm-steps", "5"]) == 2
    assert "holds a patterns study with other settings (convlstm.steps)" in capsys.readouterr().err
    assert verify(study) is None


def test_an_interrupted_study_leaves_no_summary_and_resumes_to_the_same_numbers(study, tmp_path):
    cfg = S.profile_config("smoke")
    counted = []

    class Stop:
        def __init__(self, desc):
            self.desc = desc

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def update(self, n=1):
            counted.append(self.desc)
            if self.desc.startswith("ConvLSTM") and counted.count(self.desc) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        S.run_study(cfg, tmp_path / "s", device="cpu", bars=lambda desc, total: Stop(desc))
    assert not (tmp_path / "s" / "summary.json").exists()
    assert verify(tmp_path / "s" / "ground-truth") is None
    assert (tmp_path / "s" / "convlstm" / "seed0" / "checkpoint.pt").exists()
    S.run_study(cfg, tmp_path / "s", device="cpu")
    for name in ("convlstm/seed0/rollouts.npz", "ddpm/seed0/samples.npz", "measures.csv"):
        assert (tmp_path / "s" / name).read_bytes() == (study / name).read_bytes(), name


def test_force_starts_over(tmp_path, capsys):
    args = [*ARGS, "--out", str(tmp_path), "--convlstm-steps", "2", "--ddpm-steps", "2"]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--convlstm-steps", "3", "--force"]) == 0
    assert "reused" not in capsys.readouterr().err
    assert json.loads((tmp_path / "patterns-smoke" / "config.json").read_text())["convlstm"]["steps"] == 3


@pytest.mark.parametrize("args, fragment", [
    (["--settings", "0.03"], "settings must be F:k pairs"),
    (["--convlstm-window", "9"], "window = 9 exceeds frames = 4"),
    (["--size", "33"], "image_size 33 is not divisible"),
    (["--patterns", "100000", "--size", "4096", "--length", "40.96"], "needs about"),
    (["--convlstm-kernel", "2"], "kernel must be odd, got 2"),
    (["--train-size", "64"], "train_size must be 0 (the study's grid) or in [8, 32]"),
    (["--train-size", "4"], "train_size must be 0 (the study's grid) or in [8, 32]"),
    (["--train-size", "17"], "image_size 17 is not divisible"),
    (["--size", "33", "--length", "0.33", "--train-size", "16"], "size must be divisible by 2"),
])
def test_bad_settings_exit_2_with_one_line_before_any_work(tmp_path, capsys, args, fragment):
    assert main([*ARGS, "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_networks_trained_on_a_smaller_grid_draw_and_roll_out_on_the_studys(tmp_path):
    out = tmp_path / "p"
    assert main([*ARGS, "--out", str(out), "--train-size", "16", "--ddpm-steps", "2", "--convlstm-steps", "2"]) == 0
    folder = out / "patterns-smoke"
    cfg = S.profile_config("smoke", {"train_size": 16})
    n = cfg.data.model.size
    gt = folder / "ground-truth"
    with np.load(gt / "fields.npz") as f, np.load(gt / "training-fields.npz") as t:
        assert f["u"].shape[-2:] == (n, n) and t["u"].shape[-2:] == (16, 16)
        assert not set(f["seed"].tolist()) & set(t["seed"].tolist())
        # the same physics on a smaller torus: Gray-Scott from the saved start gives the saved field
        assert cfg.data.model.length == 0.32 and n == 32  # h = 0.01, so 16 cells span 0.16
        model = replace(cfg.data.model, size=16, length=0.16, F=float(t["F"][0]), k=float(t["k"][0]))
        start = grayscott.pearson_spots(model, int(t["seed"][0]), count=cfg.data.start_squares)
        np.testing.assert_allclose(t["v"][0], grayscott.run(model, steps=cfg.steps, init=start).v, atol=1e-12)
    with np.load(gt / "trajectories.npz") as f, np.load(gt / "truth.npz") as t:
        assert f["x"].shape[-2:] == (16, 16) and t["x"].shape[-2:] == (n, n)
    with np.load(folder / "ddpm" / "seed0" / "samples.npz") as f:
        assert f["x"].shape[-2:] == (n, n)
    with np.load(folder / "convlstm" / "seed0" / "rollouts.npz") as f:
        assert f["x"].shape[-2:] == (n, n)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["train_size"] == 16 and saved["ddpm"]["unet"]["image_size"] == 16
    assert saved["convlstm"]["data"]["model"]["size"] == 16 and saved["data"]["model"]["size"] == n


def test_a_folder_holding_something_else_is_refused(tmp_path, capsys):
    (tmp_path / "patterns-smoke").mkdir()
    (tmp_path / "patterns-smoke" / "notes.txt").write_text("mine")
    assert main([*ARGS, "--out", str(tmp_path)]) == 2
    assert "holds files that are not an rdlens study" in capsys.readouterr().err


def test_field_scale_round_trips():
    rng = np.random.default_rng(0)
    u, v = rng.uniform(0, 1, (3, 8, 8)), rng.uniform(0, 0.5, (3, 8, 8))
    x = S.to_unit(u, v)
    assert x.shape == (3, 2, 8, 8) and x.min() >= -1 and x.max() <= 1
    back = S.from_unit(x)
    np.testing.assert_allclose(back[0], u, atol=1e-6)
    np.testing.assert_allclose(back[1], v, atol=1e-6)


def test_a_ddpm_sample_is_judged_at_the_setting_it_is_a_steady_state_of():
    from rdlens.convlstm import Trajectories

    cfg = S.PatternsConfig(data=Trajectories(settings="0.029:0.062,0.055:0.062"), continue_steps=500)
    model = cfg.model_at(0.055, 0.062)
    stripes = grayscott.run(model, 20000, init=grayscott.pearson_spots(model, 1))
    u = np.stack([stripes.u, np.full_like(stripes.u, np.nan)])
    v = np.stack([stripes.v, stripes.v])
    rows = S.measure_fields(cfg, "ddpm", 0, u, v, None, None)
    assert (rows[0]["F"], rows[0]["k"]) == (0.055, 0.062)
    assert rows[0]["residual"] < 0.01 and rows[0]["correlation"] > 0.99 and rows[0]["steady"]
    assert rows[1]["label"] == "blown up" and "correlation" not in rows[1]


def test_verdicts_say_reproduced_only_when_the_numbers_agree():
    def entry(system, w, share_spots, steady):
        e = {"system": system, "title": S.TITLES[system], "n": 10, "share_steady": steady,
             "wavelength": {"mean": w, "low": w - 0.005, "high": w + 0.005, "n": 10}}
        for lab in S.LABEL_COLUMNS:
            e[f"share_{lab}"] = 0.0
        e["share_spots"], e["share_stripes"] = share_spots, 1 - share_spots
        return e

    same = S.verdicts([entry("gray-scott", 0.08, 0.5, 1.0), entry("ddpm", 0.082, 0.6, 0.4)])
    assert "reproduced (intervals overlap)" in same[0] and "differs by 10%" in same[0] and "40%" in same[0]
    other = S.verdicts([entry("gray-scott", 0.08, 0.5, 1.0), entry("ddpm", 0.12, 1.0, 0.0)])
    assert "NOT reproduced;" in other[0] and "differs by 50% (total variation; NOT reproduced" in other[0]


def test_a_config_written_before_the_trajectories_were_nested_reads_as_the_same_study():
    """rdlens report of an older study: its config.json held the ConvLSTM's data settings at
    the top level; read as the same settings, not silently as the defaults."""
    from dataclasses import asdict

    from rdlens.errors import ConfigError

    cfg = S.profile_config("smoke")
    new = {"study": "patterns", **json.loads(json.dumps(asdict(cfg))), "torch_threads": 1}
    old = {k: v for k, v in new.items() if k != "data"}
    old.update(new["data"])
    assert S.from_json(old) == cfg == S.from_json(new)
    with pytest.raises(ConfigError, match="unknown key 'frame_evry'"):
        S.from_json({**new, "frame_evry": 3})


# ---- a DDPM conditioned on (F, k), with the physics term -------------------------------------


def test_the_physics_term_is_one_true_gray_scott_step_in_the_networks_scale():
    """steady_residual against Gray-Scott written out from the equations (reference_step)."""
    import torch

    cfg = S.profile_config("smoke")
    model = cfg.model_at(0.055, 0.062)
    rng = np.random.default_rng(1)
    u, v = 1 - 0.3 * rng.random((2, 16, 16)), 0.25 * rng.random((2, 16, 16))
    F, k = np.array([0.055, 0.029]), np.array([0.062, 0.062])
    got = S.steady_residual(cfg, F, k)(torch.from_numpy(S.to_unit(u, v)), torch.tensor([0, 1])).numpy()
    for j in range(2):
        at = cfg.model_at(float(F[j]), float(k[j]))
        un, vn, _, _ = grayscott.reference_step(u[j], v[j], at)
        expected = np.mean((2 * (un - u[j])) ** 2 + (2 * (vn - v[j]) / S.P.V_MAX) ** 2)
        assert got[j] == pytest.approx(expected, rel=1e-4)
    stripes = grayscott.run(model, 20000, init=grayscott.pearson_spots(model, 1))
    steady = S.steady_residual(cfg, F[:1], k[:1])(torch.from_numpy(S.to_unit(stripes.u, stripes.v))[None],
                                                 torch.tensor([0]))
    assert float(steady[0]) < 1e-3 * got[0]  # a stationary pattern: next to nothing changes


def test_the_physics_term_adds_its_weighted_residual_to_the_simple_loss():
    import torch

    from rdlens.ddpm import Schedule, loss

    schedule, x0 = Schedule(T=10), torch.randn(4, 2, 8, 8)
    eps_model = lambda x, s: 0.5 * x  # noqa: E731 - any eps-network
    const = lambda x0_hat, idx: torch.full((x0_hat.shape[0],), 3.0)  # noqa: E731
    plain = loss(eps_model, schedule, x0, torch.Generator().manual_seed(0))
    none = loss(eps_model, schedule, x0, torch.Generator().manual_seed(0), physics=const, weight=0.0)
    gen = torch.Generator().manual_seed(0)
    s = torch.randint(0, 10, (4,), generator=gen)
    weighted = loss(eps_model, schedule, x0, torch.Generator().manual_seed(0), physics=const, weight=0.5)
    assert float(none) == float(plain)
    assert float(weighted - plain) == pytest.approx(0.5 * 3.0 * float(schedule.alpha_bars[s].mean()), rel=1e-5)


def test_an_unconditioned_unet_draws_the_weights_it_drew_before_conditioning_existed():
    import torch

    from rdlens.unet import UNet, UNetConfig

    torch.manual_seed(0)
    plain = UNet(UNetConfig(in_channels=2, channels=(8, 16), attention=()))
    torch.manual_seed(0)
    cond = UNet(UNetConfig(in_channels=2, channels=(8, 16), attention=(), conditions=2))
    shared = plain.state_dict()
    assert all(torch.equal(shared[k], cond.state_dict()[k]) for k in shared)
    assert {k for k in cond.state_dict() if k not in shared} == {f"condition.{i}.{p}" for i in (0, 2)
                                                                 for p in ("weight", "bias")}
    torch.nn.init.normal_(cond.conv_out.weight)  # a trained read-out: the output now depends on the condition
    x, s = torch.randn(2, 2, 8, 8), torch.tensor([3, 3])
    a, b = cond(x, s, torch.tensor([[0.0, 0.0]] * 2)), cond(x, s, torch.tensor([[1.0, -1.0]] * 2))
    assert not torch.allclose(a, b)
    with pytest.raises(S.ConfigError, match=r"needs cond of shape \(2, 2\), got None"):
        cond(x, s)


def test_a_conditioned_ddpm_with_the_physics_term_is_judged_at_its_own_settings(tmp_path):
    args = [*ARGS, "--out", str(tmp_path), "--ddpm-conditions", "2", "--ddpm-physics-weight", "1",
            "--ddpm-steps", "2", "--convlstm-steps", "2"]
    assert main(args) == 0
    folder = tmp_path / "patterns-smoke"
    cfg = S.profile_config("smoke")
    with np.load(folder / "ddpm" / "seed0" / "samples.npz") as f:
        F, k = f["F"], f["k"]
    assert list(zip(F, k)) == [cfg.setting_pairs[j % len(cfg.setting_pairs)] for j in range(cfg.ddpm.samples)]
    import csv

    with open(folder / "measures.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["system"] == "ddpm"]
    assert [(float(r["F"]), float(r["k"])) for r in rows] == [(F[int(r["index"])], k[int(r["index"])]) for r in rows]
    assert len(rows) == cfg.ddpm.samples
    assert "a DDPM sample: at the setting it was conditioned on" in (folder / "table.md").read_text()
    assert "its first sample at each setting, drawn and judged there" in (folder / "patterns.svg").read_text()


@pytest.mark.parametrize("args, fragment", [
    (["--ddpm-conditions", "3"], "ddpm_conditions must be 0 (unconditioned) or 2"),
])
def test_bad_ddpm_conditions_are_refused_before_any_work(tmp_path, capsys, args, fragment):
    assert main([*ARGS, "--out", str(tmp_path), *args]) == 2
    assert fragment in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_rdlens_ddpm_refuses_conditions_without_fields():
    from rdlens.ddpm import DDPMConfig
    from rdlens.unet import UNetConfig

    with pytest.raises(S.ConfigError, match="conditions and physics_weight need data that carry"):
        DDPMConfig(unet=UNetConfig(conditions=2))


def test_no_two_curves_of_one_colour_share_a_line_style():
    from rdlens.report.patterns import COLORS, _style

    looks = [(COLORS[s], _style(s)) for s in S.SYSTEMS]
    assert len(set(looks)) == len(looks)


def test_stage_work_puts_the_cpu_profiles_convlstm_trainings_before_its_ddpms():
    """Measured on 2 cores: ConvLSTM stages 16-20 min, DDPM stages 11-15 min."""
    from rdlens.studies import patterns as Pt

    cfg = Pt.profile_config("cpu")
    assert Pt.stage_work(cfg, "convlstm") > Pt.stage_work(cfg, "ddpm") > 0
