"""`rdlens rd`: run directories, JSON output, init/save-state, and refusal of bad input."""

import json

import numpy as np
import pytest

from rdlens import grayscott as gs
from rdlens.balance import BalanceTrace
from rdlens.cli import build_parser, main

SMALL = ["--size", "32", "--length", "0.32", "--steps", "200", "--quiet"]


def run_dirs(root):
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_rd_writes_a_complete_run_directory(tmp_path, capsys):
    assert main(["rd", "--F", "0.055", *SMALL, "--out", str(tmp_path), "--snapshot-every", "100"]) == 0
    (d,) = run_dirs(tmp_path)
    names = {p.name for p in d.iterdir()}
    assert {"v.png", "balance.png", "trace.csv", "summary.json", "config.json", "manifest.json",
            "snapshots.npz"} <= names
    assert (d / "v.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((d / "summary.json").read_text())
    for key in ("system", "setting", "M_react", "M_diff", "R", "final_R", "steps", "seed", "wall_time_s"):
        assert key in summary
    trace = BalanceTrace.load(d / "trace.csv")
    assert len(trace) == 200 and summary["R"] == pytest.approx(trace.R)
    config = json.loads((d / "config.json").read_text())
    assert config["model"]["F"] == 0.055 and config["steps"] == 200
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["seed"] == 0 and "numpy" in manifest["versions"] and "simulate" in manifest["timings_s"]
    assert str(d) in capsys.readouterr().out


def test_rd_json_prints_the_summary_on_stdout(tmp_path, capsys):
    assert main(["rd", *SMALL, "--json", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["system"] == "rd" and summary["steps"] == 200 and summary["R"] > 0


def test_save_state_then_init_continues_the_same_trajectory(tmp_path):
    assert main(["rd", *SMALL, "--save-state", "--out", str(tmp_path / "a")]) == 0
    (first,) = run_dirs(tmp_path / "a")
    state = first / "state.npz"
    # continue 200 steps from the saved state; --size is taken from the file
    assert main(["rd", "--length", "0.32", "--steps", "200", "--quiet", "--init", str(state),
                 "--save-state", "--out", str(tmp_path / "b")]) == 0
    (second,) = run_dirs(tmp_path / "b")
    with np.load(second / "state.npz") as z:
        v_two_legs = z["v"]
    one_leg = gs.run(gs.GrayScott(size=32, length=0.32), steps=400, seed=0)
    np.testing.assert_allclose(v_two_legs, one_leg.v, atol=1e-13)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--dt", "3"], "explicit-diffusion limit"),
        (["--F", "-0.1"], "F must be >= 0"),
        (["--Dv", "-1e-5"], "Dv must be >= 0"),
        (["--size", "4"], "size must be an integer >= 8"),
        (["--F", "nan"], "finite"),
        (["--k", "inf"], "finite"),
        (["--steps", "0"], "steps must be an integer >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2_before_any_work(tmp_path, capsys, args, fragment):
    out = tmp_path / "runs"
    assert main(["rd", "--quiet", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert run_dirs(out) == []


def test_init_file_with_wrong_shapes_or_arrays_is_refused(tmp_path, capsys):
    bad_shapes = tmp_path / "bad.npz"
    np.savez(bad_shapes, u=np.ones((16, 16)), v=np.zeros((12, 12)))
    missing = tmp_path / "missing.npz"
    np.savez(missing, u=np.ones((16, 16)))
    for path, fragment in ((bad_shapes, "expected (16, 16)"), (missing, "missing array"),
                           (tmp_path / "nope.npz", "does not exist")):
        assert main(["rd", "--quiet", "--init", str(path), "--out", str(tmp_path / "runs")]) == 2
        err = capsys.readouterr().err
        assert fragment in err and len(err.strip().splitlines()) == 1
    assert run_dirs(tmp_path / "runs") == []


def test_blow_up_exits_nonzero_with_step_and_writes_nothing(tmp_path, capsys):
    init = tmp_path / "hot.npz"
    np.savez(init, u=np.full((16, 16), 1e3), v=np.full((16, 16), 1e3))
    assert main(["rd", "--quiet", "--length", "0.16", "--init", str(init), "--out", str(tmp_path / "runs")]) == 1
    assert "diverged at step" in capsys.readouterr().err
    assert run_dirs(tmp_path / "runs") == []


def test_help_documents_every_option_with_its_default():
    parser = build_parser()
    rd = parser._subparsers._group_actions[0].choices["rd"]
    text = rd.format_help()
    for opt in ("--F", "--k", "--Du", "--Dv", "--size", "--length", "--dt", "--steps", "--seed", "--dtype",
                "--init", "--save-state", "--out", "--json"):
        assert opt in text
    for action in rd._actions:
        if action.option_strings and action.dest != "help":
            assert "default" in rd._get_formatter()._get_help_string(action), action.dest
