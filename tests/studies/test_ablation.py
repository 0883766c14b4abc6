"""rdlens patterns --ablation: the variants of what a study switches on, trained and judged as the study's own."""

import json

import pytest

from rdlens.cli import main
from rdlens.run import verify
from rdlens.studies import ablation as A

ARGS = ["patterns", "--profile", "smoke", "--quiet", "--device", "cpu"]
SWITCHES = ["--convlstm-input-noise", "0.02", "--convlstm-pool", "4", "--ddpm-conditions", "2"]
OFF_CONVLSTM = {"input_noise": 0.0, "window_final": 0, "pool": 0, "kernel": 3}
OFF_DDPM = {"conditions": 0, "physics_weight": 0.0}


def test_nothing_switched_on_gives_no_variants():
    assert A.variants(OFF_CONVLSTM, OFF_DDPM) == []


def test_one_switch_gives_none_and_all_and_several_each_alone_too():
    one = A.variants({**OFF_CONVLSTM, "kernel": 7}, OFF_DDPM)
    assert [(v.system, v.name, v.off) for v in one] == [("convlstm", "none", {"kernel": 3}), ("convlstm", "all", {})]
    three = A.variants({**OFF_CONVLSTM, "input_noise": 0.02, "pool": 8}, {"conditions": 2, "physics_weight": 1.0})
    assert [(v.system, v.name, v.off) for v in three] == [
        ("convlstm", "none", {"input_noise": 0.0, "pool": 0}),
        ("convlstm", "only input_noise", {"pool": 0}),
        ("convlstm", "only pool", {"input_noise": 0.0}),
        ("convlstm", "all", {}),
        ("ddpm", "none", {"conditions": 0, "physics_weight": 0.0}),
        ("ddpm", "only conditions", {"physics_weight": 0.0}),
        ("ddpm", "only physics_weight", {"conditions": 0}),
        ("ddpm", "all", {}),
    ]
    assert three[1].folder == "ablation/convlstm-only-input_noise"


def test_a_summary_counts_shares_and_skips_what_gray_scott_cannot_continue():
    rows = [{"label": "spots", "steady": True, "residual": 0.01, "wavelength": 0.08},
            {"label": "stripes", "steady": False, "residual": 0.03, "wavelength": 0.1},
            {"label": "blown up", "residual": float("nan")},
            {"label": "spots", "steady": False, "residual": 0.05, "wavelength": 0.09}]
    s = A.summary(rows)
    assert s["steady"] == 0.25 and s["blown_up"] == 0.25
    assert s["labels"] == {"spots": 0.5, "stripes": 0.25, "mixed": 0.0, "none": 0.0, "blown up": 0.25}
    assert s["residual"]["mean"] == pytest.approx(0.03) and s["residual"]["n"] == 3
    assert s["wavelength"]["mean"] == pytest.approx(0.09)
    assert A.total_variation(s["labels"], {"spots": 0.5, "stripes": 0.5}) == pytest.approx(0.25)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    assert main([*ARGS, "--out", str(root / "with"), *SWITCHES, "--ablation"]) == 0
    assert main([*ARGS, "--out", str(root / "without")]) == 0  # every switch off, as the none variants
    return root / "with" / "patterns-smoke", root / "without" / "patterns-smoke"


def test_the_none_variants_are_the_study_run_with_its_switches_off(studies):
    ablated, plain = studies
    for name in ("rollouts.npz", "losses.csv"):
        assert (ablated / "ablation" / "convlstm-none" / name).read_bytes() == (plain / "convlstm" / "seed0" / name).read_bytes()
    for name in ("samples.npz", "trace.csv"):
        assert (ablated / "ablation" / "ddpm-none" / name).read_bytes() == (plain / "ddpm" / "seed0" / name).read_bytes()


def test_the_ablation_table_has_every_variant_and_the_all_row_is_the_studys_first_seed(studies):
    ablated, _ = studies
    saved = json.loads((ablated / "ablation.json").read_text())
    assert [(e["system"], e["variant"]) for e in saved["variants"]] == [
        ("convlstm", "none"), ("convlstm", "only input_noise"), ("convlstm", "only pool"), ("convlstm", "all"),
        ("ddpm", "none"), ("ddpm", "all")]
    table = json.loads((ablated / "table.json").read_text())
    study_long = next(e for e in table["systems"] if e["system"] == "convlstm-long")
    everything = next(e for e in saved["variants"] if e["system"] == "convlstm" and e["variant"] == "all")
    assert everything["R"] == pytest.approx(study_long["R"]["mean"])  # one seed: the table's mean is its R
    assert everything["steady"] == study_long["share_steady"]
    md = (ablated / "ablation.md").read_text()
    assert "| only pool | input_noise = 0.0 |" in md and "Gray-Scott (reference)" in md
    assert verify(ablated) is None and verify(ablated / "ablation" / "convlstm-only-pool") is None
    assert "ablation.md" in json.loads((ablated / "summary.json").read_text())["files"]


def test_running_again_reuses_the_ablation_and_report_rebuilds_it(studies, tmp_path, capsys):
    import shutil

    ablated, _ = studies
    copy = tmp_path / "patterns-smoke"
    shutil.copytree(ablated, copy)
    capsys.readouterr()
    assert main([*ARGS, "--out", str(tmp_path), *SWITCHES, "--ablation"]) == 0
    err = capsys.readouterr().err
    assert "running" not in err and err.count("reused") == 7
    before = {name: (copy / name).read_bytes() for name in ("ablation.md", "ablation.json")}
    assert main(["report", str(copy)]) == 0
    assert {name: (copy / name).read_bytes() for name in before} == before and verify(copy) is None
    samples = copy / "ablation" / "ddpm-none" / "samples.npz"
    samples.write_bytes(samples.read_bytes()[:-8] + bytes(8))  # damaged
    capsys.readouterr()
    assert main(["report", str(copy)]) == 2
    assert "stage ablation/ddpm-none of the patterns study" in capsys.readouterr().err


def test_an_ablation_with_nothing_switched_on_is_refused_before_any_work(tmp_path, capsys):
    assert main([*ARGS, "--out", str(tmp_path), "--ablation"]) == 2
    err = capsys.readouterr().err
    assert "--ablation needs a stabiliser or loss switched on" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
