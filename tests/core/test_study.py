"""The one study lifecycle (rdlens.study): claiming a folder, stages with checksums, the
manifest and summary, and what `rdlens report` and a page trust because of it."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from rdlens import study
from rdlens.cli import main
from rdlens.errors import ConfigError
from rdlens.progress import no_bars
from rdlens.tasks import Task, run_tasks
from test_robustness import one_line_error


def stage_task(folder: str, name: str, *, bars, log) -> dict[str, float]:
    """A stage: one file and its summary."""
    path = study.fresh_stage(os.path.join(folder, name))
    (path / "result.txt").write_text(name)
    study.finish_stage(path, {"name": name})
    return {name: 0.5}


def test_a_claimed_folder_is_locked_in_the_name_of_its_study(tmp_path):
    with study.claim(tmp_path, "sweep", {"a": 1}):
        assert (tmp_path / ".rdlens.lock").read_text().startswith("rdlens sweep (pid")
        with pytest.raises(ConfigError, match=r"being written by rdlens sweep \(pid \d+\)"):
            with study.claim(tmp_path, "sweep", {"a": 1}):
                pass
    assert json.loads((tmp_path / "config.json").read_text()) == {"study": "sweep", "a": 1}


def test_other_settings_are_refused_unless_force_which_starts_over(tmp_path):
    with study.claim(tmp_path, "patterns", {"a": 1}):
        (tmp_path / "stage").mkdir()
    with pytest.raises(ConfigError, match=r"holds a patterns study with other settings \(a, b\); add --force"):
        with study.claim(tmp_path, "patterns", {"a": 2, "b": 0}):
            pass
    assert (tmp_path / "stage").exists()
    with study.claim(tmp_path, "patterns", {"a": 2, "b": 0}, force=True):
        assert sorted(p.name for p in tmp_path.iterdir()) == [".rdlens.lock", "config.json"]


@pytest.mark.parametrize("force", [False, True])
def test_force_never_clears_a_folder_of_something_else(tmp_path, force):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="holds files that are not an rdlens study"):
        with study.claim(tmp_path, "patterns", {}, force=force):
            pass
    other = tmp_path / "other"
    with study.claim(other, "sweep", {}):
        pass
    with pytest.raises(ConfigError, match="holds a sweep study; choose another --out"):
        with study.claim(other, "patterns", {}, force=force):
            pass
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_a_stage_is_done_only_while_every_file_verifies(tmp_path):
    stage_task(str(tmp_path), "s", bars=no_bars, log=print)
    stage = tmp_path / "s"
    assert study.stage_done(stage)
    (stage / "checkpoint.pt").write_bytes(b"x")  # written after the summary: not vouched for, not damage
    assert study.stage_done(stage)
    (stage / "result.txt").write_text("S")
    assert not study.stage_done(stage)
    assert "result.txt differs from the file that was written" in study.verify(stage)
    study.fresh_stage(stage)
    assert sorted(p.name for p in stage.iterdir()) == ["checkpoint.pt"]  # a training stage resumes from it


@pytest.mark.parametrize("jobs", [1, 2])
def test_finish_records_where_each_stage_ran_and_vouches_for_what_is_published(tmp_path, jobs):
    with study.claim(tmp_path, "patterns", {"x": 1}) as s:
        tasks = [Task(f"stage {n}", stage_task, (str(tmp_path), n)) for n in ("a", "b")]
        s.timings.update(run_tasks(tasks, jobs, bars=no_bars, log=lambda line: None, where=s.where))
        with s.timed("table"):
            (tmp_path / "table.md").write_text("| x |\n")
        summary = s.finish({"verdicts": []}, ["table.md", "a/summary.json", "b/summary.json"], seed=3, jobs=jobs)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["study"] == "patterns" and manifest["seed"] == 3
    assert set(manifest["timings_s"]) == {"a", "b", "table"}
    places = manifest["stages_where"]
    assert places["table"] == f"this process (pid {os.getpid()})"
    for name in ("stage a", "stage b"):
        assert places[name].startswith("worker process" if jobs > 1 else "this process")
        assert (f"(pid {os.getpid()})" in places[name]) == (jobs == 1)
    assert set(summary["files"]) == {"table.md", "a/summary.json", "b/summary.json", "manifest.json", "config.json"}
    assert study.read_summary(tmp_path, "patterns")["verdicts"] == []
    (tmp_path / "a" / "summary.json").write_text((tmp_path / "a" / "summary.json").read_text().replace("a", "A", 1))
    with pytest.raises(ConfigError, match=r"cannot be trusted: .*a/summary.json differs"):
        study.read_summary(tmp_path, "patterns")
    with pytest.raises(ConfigError, match="holds a patterns study, not a sweep study"):
        study.read_summary(tmp_path, "sweep")


def test_a_claim_unfinishes_the_study_until_it_finishes_again(tmp_path):
    with study.claim(tmp_path, "patterns", {}) as s:
        s.finish({}, [])
    assert study.verify(tmp_path) is None
    with pytest.raises(RuntimeError):
        with study.claim(tmp_path, "patterns", {}):
            raise RuntimeError("interrupted")
    assert "did not finish" in study.verify(tmp_path)


# ---- the three studies on the lifecycle, and what report and the page trust ----------------

SWEEP = ["sweep", "--F", "0.03:0.05:2", "--k", "0.06:0.062:2", "--steps", "200", "--size", "16", "--length",
         "0.16", "--samples", "4", "--thumbnail", "8", "--workers", "1", "--quiet"]


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """A reproduce folder and, beside it, a finished sweep the user has not named."""
    pytest.importorskip("dask.distributed")
    out = tmp_path_factory.mktemp("studies")
    assert main(["reproduce", "--profile", "smoke", "--rows", "rd-spot", "--quiet", "--device", "cpu", "--jobs", "1",
                 "--out", str(out)]) == 0
    assert main([*SWEEP, "--out", str(out)]) == 0
    (sweep_dir,) = out.glob("sweep-*")
    return out / "reproduce-smoke", sweep_dir


def test_every_study_finishes_with_a_summary_that_vouches_for_what_it_publishes(studies):
    repro, sweep_dir = studies
    for folder, kind, files in ((repro, "reproduce", {"table1.csv", "index.html", "rows/rd-spot/seed0/summary.json"}),
                                (sweep_dir, "sweep", {"points.csv", "maps.png", "tiles.json"})):
        summary = study.read_summary(folder, kind)
        assert summary["study"] == kind and files <= set(summary["files"])
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["study"] == kind and manifest["stages_where"] and manifest["timings_s"]
    assert json.loads((sweep_dir / "manifest.json").read_text())["scheduler"] == "embedded LocalCluster"


def test_a_sweep_folder_is_locked_against_a_second_process(studies, capsys):
    _, sweep_dir = studies
    with study.lock(sweep_dir, "rdlens sweep"):
        assert main(["sweep", "--resume", str(sweep_dir), "--quiet"]) == 2
    one_line_error(capsys, "is being written by rdlens sweep (pid")


def test_the_page_shows_another_study_only_when_named_and_verified(studies, tmp_path, capsys):
    repro, sweep_dir = studies
    page = (repro / "index.html").read_text()
    assert "The (F, k) sweep" not in page  # a sibling folder is not part of this study
    copy = tmp_path / "sweep-copy"
    shutil.copytree(sweep_dir, copy)
    assert main(["report", str(repro), "--embed", str(copy)]) == 0
    capsys.readouterr()
    assert "The (F, k) sweep" in (repro / "index.html").read_text()
    assert study.verify(repro) is None  # the rebuilt page is vouched for again
    assert json.loads((repro / "embeds.json").read_text())["embed"][0]["kind"] == "sweep"
    (copy / "points.csv").write_text("index\n")  # edited after it was named
    assert main(["report", str(repro)]) == 2
    one_line_error(capsys, "sweep-copy/points.csv differs from the file that was written")
    assert main(["report", str(repro), "--embed", str(repro)]) == 2
    one_line_error(capsys, "not a patterns study or a sweep folder")
    assert main(["report", str(repro), "--embed", "none"]) == 0
    assert "The (F, k) sweep" not in (repro / "index.html").read_text()


def test_report_reads_the_kind_of_study_and_refuses_a_damaged_one(studies, tmp_path, capsys):
    _, sweep_dir = studies
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy)
    before = (copy / "points.csv").read_bytes()
    (copy / "maps.png").unlink()
    assert main(["report", str(copy)]) == 2
    one_line_error(capsys, "maps.png is missing")
    shutil.copy(sweep_dir / "maps.png", copy / "maps.png")
    (copy / "points.csv").write_text("index\n")
    assert main(["report", str(copy)]) == 2  # published files are checked before anything is rewritten
    shutil.copy(sweep_dir / "points.csv", copy / "points.csv")
    capsys.readouterr()
    assert main(["report", str(copy)]) == 0
    assert "sweep of 4 points" in capsys.readouterr().out
    assert (copy / "points.csv").read_bytes() == before
    assert main(["report", str(tmp_path)]) == 2
    one_line_error(capsys, "holds no rdlens study")


def test_controls_written_after_a_row_are_vouched_for_by_its_summary(tmp_path):
    from rdlens.reproduce import reproduce

    folder, _, _ = reproduce("smoke", out=tmp_path, rows=("rd-spot",), controls=True, device="cpu",
                             log=lambda line: None)
    row = folder / "rows" / "rd-spot" / "seed0"
    listed = study.listed_files(row)
    assert "controls.json" in listed and any(name.startswith("control-") for name in listed)
    (row / "controls.json").write_text("{}")
    assert "controls.json differs" in study.verify(row)
    lines: list[str] = []
    reproduce("smoke", out=tmp_path, rows=("rd-spot",), controls=True, device="cpu", log=lines.append)
    assert any("recomputing" in line for line in lines)
    assert study.verify(row) is None and json.loads((row / "controls.json").read_text())


def test_a_report_that_draws_figures_anew_leaves_the_study_verified(studies, tmp_path, monkeypatch):
    """A newer rdlens may draw a figure differently: report rebuilds it from the verified tiles
    and the study's summary vouches for the new bytes (the table, rebuilt, is the same)."""
    from rdlens import sweep

    _, sweep_dir = studies
    copy = tmp_path / "sweep"
    shutil.copytree(sweep_dir, copy)
    before = {name: (copy / name).read_bytes() for name in ("maps.png", "points.csv")}
    drawn = sweep.plot_maps

    def other_style(cfg, cols, stem, dpi=None):
        import matplotlib

        with matplotlib.rc_context({"axes.labelcolor": "red"}):
            drawn(cfg, cols, stem)

    monkeypatch.setattr(sweep, "plot_maps", other_style)
    sweep.rebuild(copy)
    assert (copy / "maps.png").read_bytes() != before["maps.png"]
    assert (copy / "points.csv").read_bytes() == before["points.csv"]
    assert study.verify(copy) is None
