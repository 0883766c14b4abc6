"""`rdlens reproduce` and `rdlens report` end to end on the tiny smoke profile."""

import csv
import json
import shutil

import pytest

from rdlens import reproduce as R
from rdlens.cli import main
from rdlens.errors import ConfigError

PNG = b"\x89PNG\r\n\x1a\n"
TABLES = ("table1.md", "table1.csv", "table1.json", "table1.tex")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    code = main(["reproduce", "--profile", "smoke", "--out", str(out), "--quiet", "--device", "cpu"])
    return out / "reproduce-smoke", code


def test_smoke_run_writes_every_output_and_all_rows(smoke):
    folder, code = smoke
    assert code == 3  # no --data-dir: FashionMNIST and CIFAR10 are skipped, so not every row ran
    for name in TABLES + ("fig2.svg", "manifest.json", "rows.json"):
        assert (folder / name).stat().st_size > 0, name
    for name in ("fig2.png", "fig3.png", "patterns.png"):
        assert (folder / name).read_bytes()[:8] == PNG, name
    table = json.loads((folder / "table1.json").read_text())
    assert [r["row"] for r in table["rows"]] == list(R.ROW_IDS)
    by_id = {r["row"]: r for r in table["rows"]}
    for row_id in ("ddpm-fashion-mnist", "ddpm-cifar10"):
        assert by_id[row_id]["status"] == "skipped"
        assert f"rdlens data download {row_id.removeprefix('ddpm-')}" in by_id[row_id]["note"]
    mnist = by_id["ddpm-mnist"]
    assert mnist["status"] == "stand-in data" and mnist["data"] == "digits" and "offline" in mnist["note"]
    for row_id in R.ROW_IDS[:6]:
        row = by_id[row_id]
        assert row["R"] == pytest.approx(row["M_react"] / row["M_diff"])
        assert row["rel_diff_R"] == pytest.approx(row["R"] / row["paper_R"] - 1)
    with open(folder / "table1.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 8
    md, differences = (folder / "table1.md").read_text().split("## Differences from the public code")
    assert "digits" in md and md.count("\n| ") == 9  # header + 8 rows
    assert "| RD states and diffusion norm |" in differences and differences.strip() in (
        folder / "differences.md").read_text()
    norms = next(line for line in differences.splitlines() if line.startswith("| RD states"))
    assert norms.split("|")[5].strip() == "rdlens"  # the smoke profile keeps rdlens's measurement
    assert "\\begin{tabular}" in (folder / "table1.tex").read_text()


def test_profiles_track_R_along_training_and_the_report_says_whether_samples_converged(smoke):
    folder, _ = smoke
    quality = (folder / "quality.md").read_text()
    row = next(line for line in quality.splitlines() if line.startswith("| ddpm-mnist |"))
    assert row.split("|")[9].strip() == "no"  # 4 training steps cannot converge
    assert row.split("|")[2].strip() == str(summary_images(folder))
    assert "## R along training" in quality and "### ddpm-mnist, seed 0" in quality
    from rdlens.quality import converged

    summary = json.loads((folder / "rows" / "ddpm-mnist" / "seed0" / "summary.json").read_text())
    assert converged(summary["quality"]) is False
    real = summary["quality"]["real"]
    assert converged({"confident": 0.8 * real["confident"], "coverage": 0.9, "real": real}) is True
    steps = [line.split("|")[1].strip() for line in quality.split("### ddpm-mnist")[1].splitlines()
             if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert steps == ["0", "2", "4"]


def summary_images(folder):
    """The images the smoke profile's MNIST row judged, from its summary."""
    return json.loads((folder / "rows" / "ddpm-mnist" / "seed0" / "summary.json").read_text())["quality"]["images"]


def _row_mtimes(folder):
    return {p.parent.parent.name: p.stat().st_mtime_ns for p in (folder / "rows").glob("*/seed0/summary.json")}


def test_rerun_recomputes_nothing_and_a_deleted_summary_recomputes_that_row_alone(smoke, capsys):
    folder, _ = smoke
    before = _row_mtimes(folder)
    args = ["reproduce", "--profile", "smoke", "--out", str(folder.parent), "--quiet", "--device", "cpu"]
    assert main(args) == 3
    assert _row_mtimes(folder) == before
    assert capsys.readouterr().err.count("reused") == 6
    (folder / "rows" / "lstm-lorenz" / "seed0" / "summary.json").unlink()
    assert main(args) == 3
    after = _row_mtimes(folder)
    assert {k for k in after if after[k] != before[k]} == {"lstm-lorenz"}
    err = capsys.readouterr().err
    assert "lstm-lorenz seed 0           resuming" in err and err.count("reused") == 5


def test_report_rebuilds_byte_identical_tables(smoke, capsys):
    folder, _ = smoke
    saved = {n: (folder / n).read_bytes() for n in TABLES}
    for n in TABLES:
        (folder / n).unlink()
    (folder / "fig3.png").unlink()
    assert main(["report", str(folder)]) == 0
    assert {n: (folder / n).read_bytes() for n in TABLES} == saved
    assert (folder / "fig3.png").exists()
    assert "| rd-spot |" in capsys.readouterr().out


def test_changed_settings_are_recomputed_not_reused(smoke, tmp_path, capsys):
    folder, _ = smoke
    copy = tmp_path / "reproduce-smoke2"
    shutil.copytree(folder, copy)
    profile = tmp_path / "smoke2.toml"
    profile.write_text((R.resources.files("rdlens") / "profiles/smoke.toml").read_text().replace("steps = 200", "steps = 150"))
    assert main(["reproduce", "--profile", str(profile), "--rows", "rd-spot", "--quiet", "--device", "cpu",
                 "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "reproduce-smoke2" / "rows" / "rd-spot" / "seed0" / "summary.json").read_text())
    assert summary["steps"] == 150


def test_bad_profile_and_rows_are_refused_before_any_work(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[lstm]\nsteps = 10\nwarp = 9\n")
    assert main(["reproduce", "--profile", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key(s) ['warp']" in capsys.readouterr().err
    assert main(["reproduce", "--rows", "rd-spot,rd-hexagon", "--out", str(tmp_path / "o")]) == 2
    assert "rd-hexagon" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="not a finished"):
        from rdlens.report import build_report

        build_report(tmp_path)


@pytest.mark.parametrize("name", R.PROFILES)
def test_shipped_profiles_resolve_every_row(name):
    profile = R.load_profile(name)
    plans = [R.plan_row(row, profile, 0, None) for row in R.ROWS]
    assert [p.status for p in plans[-2:]] == ["skipped", "skipped"]
    assert plans[5].data == "digits"


def test_a_longer_training_continues_the_saved_row_and_equals_a_run_of_that_length(tmp_path, capsys):
    """DDPM training has no schedule over its length, so 4 steps + 2 more from the checkpoint
    must be the 6-step run itself: the same losses and the same R, bit for bit."""
    smoke_text = (R.resources.files("rdlens") / "profiles/smoke.toml").read_text()
    profiles = {}
    for steps in (4, 6):
        profiles[steps] = tmp_path / f"p{steps}.toml"
        profiles[steps].write_text(smoke_text.replace("steps = 4\n", f"steps = {steps}\n"))
    args = ["reproduce", "--rows", "ddpm-mnist", "--quiet", "--device", "cpu"]
    main([*args, "--profile", str(profiles[4]), "--out", str(tmp_path / "a")])
    folder = tmp_path / "a" / "reproduce-p4"
    (folder.parent / "reproduce-p6").symlink_to(folder)  # the same folder under the longer profile's name
    capsys.readouterr()
    main([*args, "--profile", str(profiles[6]), "--out", str(tmp_path / "a")])
    assert "extending from its checkpoint (steps 4 -> 6)" in capsys.readouterr().err
    row = folder / "rows" / "ddpm-mnist" / "seed0"
    extended = json.loads((row / "summary.json").read_text())
    main([*args, "--profile", str(profiles[6]), "--out", str(tmp_path / "b")])
    straight_row = tmp_path / "b" / "reproduce-p6" / "rows" / "ddpm-mnist" / "seed0"
    straight = json.loads((straight_row / "summary.json").read_text())
    assert extended["resumed_from_step"] == 4 and extended["steps"] == 6
    assert extended["R"] == straight["R"] and extended["final_R"] == straight["final_R"]
    assert (row / "losses.csv").read_text() == (straight_row / "losses.csv").read_text()
    assert (row / "training_curve.csv").read_text() == (straight_row / "training_curve.csv").read_text()


def test_a_cosine_schedule_row_is_retrained_not_extended_when_steps_grow(tmp_path, capsys):
    """A cosine learning rate depends on the total number of steps: the first 4 steps of a
    6-step run are not those of a 4-step run, so a longer profile starts the row over."""
    smoke_text = (R.resources.files("rdlens") / "profiles/smoke.toml").read_text()
    for steps in (4, 6):
        (tmp_path / f"p{steps}.toml").write_text(smoke_text.replace("steps = 4\n", f"steps = {steps}\n")
                                                 + '\n[rows.ddpm-mnist]\nlr_schedule = "cosine"\n')
    args = ["reproduce", "--rows", "ddpm-mnist", "--quiet", "--device", "cpu", "--out", str(tmp_path / "a")]
    assert main([*args, "--profile", str(tmp_path / "p4.toml")]) == 0
    folder = tmp_path / "a" / "reproduce-p4"
    (folder.parent / "reproduce-p6").symlink_to(folder)
    capsys.readouterr()
    assert main([*args, "--profile", str(tmp_path / "p6.toml")]) == 0
    assert "extending" not in capsys.readouterr().err
    summary = json.loads((folder / "rows" / "ddpm-mnist" / "seed0" / "summary.json").read_text())
    assert summary["resumed_from_step"] == 0 and summary["steps"] == 6


def test_a_row_saved_before_a_setting_existed_matches_that_settings_default():
    """Rows run before rdlens grew a setting (e.g. rd `norms`, ddpm `unet.network`) ran as its
    default does: they are reused, not recomputed; a non-default value still differs."""
    from rdlens import systems
    from rdlens.run import config_json

    for name, nested_new in (("rd", None), ("ddpm", "network")):
        system = systems.get(name)
        defaults = config_json(system, system.config_type()())
        wanted = json.loads(json.dumps(defaults))
        old = json.loads(json.dumps(defaults))
        new_key = "norms" if name == "rd" else "last_step"
        del old[new_key]
        if nested_new:
            del old["unet"][nested_new]
        assert R._with_new_defaults(old, wanted, defaults) == wanted
        changed = dict(wanted, **{new_key: "public-code"})
        assert R._with_new_defaults(old, changed, defaults) != changed


def test_quality_table_judges_every_ddpm_row(tmp_path):
    """Two rows with quality (it once failed on the second: a name shadowed in the loop); the
    judged image count is shown, and a dash for a summary written before it was recorded."""
    from rdlens import layout
    from rdlens.report import table

    real = {"frechet": 20.0, "confident": 0.7, "coverage": 0.97}
    for row, confident, counted in (("ddpm-mnist", 0.5, {"images": 256}), ("ddpm-fashion-mnist", 0.6, {})):
        d = layout.seed_dir(tmp_path, row, 0)
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"quality": {
            "frechet": 30.0, "confident": confident, "coverage": 0.95, "real": real, "classifier_accuracy": 0.9,
            **counted}}))
    info = {"rows": [{"id": "ddpm-mnist", "status": "ran"}, {"id": "ddpm-fashion-mnist", "status": "ran"}],
            "seeds": [0]}
    lines = {line.split("|")[1].strip(): (line.split("|")[2].strip(), line.split("|")[9].strip())
             for line in table.quality_markdown(tmp_path, info).splitlines() if line.startswith("| ddpm-")}
    assert lines == {"ddpm-mnist": ("256", "no"), "ddpm-fashion-mnist": ("—", "yes")}  # 0.6 >= 0.8 * 0.7, 0.5 not
