"""A fourth system added in this one file, with its own controls and its own claims:
registered, run through `rdlens reproduce`, `rdlens report`, the page and its own generated
subcommand with no other change, and checked against its closed form.

The system is a linear relaxation x_{t+1} = x_t + dt (s - a x_t): the source dt s is its
reaction, the decay dt a x_t its diffusion. With q = 1 - a dt and x* = s / a,
x_t = x* + (x0 - x*) q^t, so for a positive path

    M_react = dt s,   M_diff = dt a (x* + (x0 - x*) (1 - q^T) / ((1 - q) T)),   final R = s / (a x_{T-1}).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from rdlens import systems
from rdlens.balance import BalanceTrace
from rdlens.cli import main
from rdlens.errors import ConfigError


@dataclass(frozen=True)
class DecayConfig:
    """A linear relaxation towards s / a."""

    rate: float = 0.1
    """decay rate a"""
    source: float = 1.0
    """constant source s"""
    x0: float = 0.5
    """start value"""
    dt: float = 1.0
    """time step"""
    steps: int = 60
    """number of steps"""
    seed: int = 0
    """unused (the model is deterministic); every system has one"""

    def __post_init__(self) -> None:
        if not 0 < self.rate * self.dt < 1:
            raise ConfigError(f"rate * dt must be in (0, 1), got {self.rate * self.dt}")


class Decay(systems.System):
    name = "decay"
    title = "Decay"
    help = "a linear relaxation (test system)"
    color = "C5"

    def config_type(self) -> type:
        return DecayConfig

    def run_name(self, config: DecayConfig) -> str:
        return f"decay-a{config.rate:g}"

    def setting(self, config: DecayConfig) -> str:
        return f"a = {config.rate:g}"

    def data_label(self, config: DecayConfig) -> str:
        return f"a = {config.rate:g}, s = {config.source:g}"

    def execute(self, config: DecayConfig, prepared, ctx) -> dict:
        x, reaction, diffusion = config.x0, [], []
        for _ in range(config.steps):
            reaction.append(abs(config.dt * config.source))
            diffusion.append(abs(config.dt * config.rate * x))
            x += config.dt * (config.source - config.rate * x)
        trace = BalanceTrace.from_series(np.array(reaction), np.array(diffusion))
        trace.save(ctx.dir.file("trace.csv"))
        np.save(ctx.dir.file("x.npy"), np.array([x]))
        return {**trace.summary(), "x_final": x}

    control_labels = {"frozen": "x held at x0", "balanced": "x held at s/a"}

    def controls(self, config: DecayConfig, run_dir, device) -> tuple[dict, dict]:
        results, traces = {}, {}
        for name, x in (("frozen", config.x0), ("balanced", config.source / config.rate)):
            reaction = np.full(config.steps, config.dt * config.source)
            trace = BalanceTrace.from_series(reaction, np.full(config.steps, config.dt * config.rate * x))
            results[name], traces[name] = {"M_react": trace.M_react, "M_diff": trace.M_diff, "R": trace.R}, trace
        return results, traces

    def claims(self, config: DecayConfig, run_dir, device) -> dict:
        return {"final_R": BalanceTrace.load(run_dir / "trace.csv").final_R}

    def judge_claims(self, row: str, measured: list[dict]) -> dict[str, str]:
        worst = max(abs(m["final_R"] - 1) for m in measured)
        verdict = "supported" if worst < 0.01 else "not supported"
        return {"the relaxation ends in balance": f"{verdict}: final R is at most {worst:.2%} from 1 over "
                                                  f"{len(measured)} seed(s)"}

    def draw_panel(self, ax, run_dir) -> str:
        ax.set_axis_on()
        tr = BalanceTrace.load(run_dir / "trace.csv")
        ax.plot(tr.tau, tr.diffusion)
        return " (decay norm)"


def closed_form(a: float, s: float = 1.0, x0: float = 0.5, dt: float = 1.0, T: int = 60) -> tuple[float, float, float]:
    q, xs = 1 - a * dt, s / a
    m_react = dt * s
    m_diff = dt * a * (xs + (x0 - xs) * (1 - q**T) / ((1 - q) * T))
    x_last = xs + (x0 - xs) * q ** (T - 1)
    return m_react, m_diff, s / (a * x_last)


@pytest.fixture
def decay():
    system = systems.register(Decay())
    yield system
    systems.unregister("decay")


PROFILE = """
description = "two relaxation rates"
[decay]
steps = 60
[rows.decay-slow]
system = "decay"
label = "slow relaxation"
rate = 0.05
[rows.decay-fast]
system = "decay"
label = "fast relaxation"
rate = 0.2
paper = { M_react = 1.0, M_diff = 1.0, R = 1.0 }
"""


def test_a_new_system_runs_through_reproduce_and_report_and_matches_its_closed_form(decay, tmp_path, capsys):
    profile = tmp_path / "toy.toml"
    profile.write_text(PROFILE)
    args = ["reproduce", "--profile", str(profile), "--rows", "decay-slow,decay-fast", "--seeds", "2", "--controls",
            "--claims", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    folder = tmp_path / "reproduce-toy"
    with open(folder / "table1.csv") as fh:
        rows = {r["row"]: r for r in csv.DictReader(fh)}
    for row_id, a in (("decay-slow", 0.05), ("decay-fast", 0.2)):
        m_react, m_diff, final = closed_form(a)
        r = rows[row_id]
        assert float(r["M_react"]) == pytest.approx(m_react, rel=1e-12)
        assert float(r["M_diff"]) == pytest.approx(m_diff, rel=1e-12)
        assert float(r["R"]) == pytest.approx(m_react / m_diff, rel=1e-12)
        assert float(r["final_R"]) == pytest.approx(final, rel=1e-12)
        assert r["system"] == "Decay" and r["n_seeds"] == "2"
    assert rows["decay-slow"]["setting"] == "slow relaxation" and rows["decay-slow"]["paper_R"] == ""
    assert rows["decay-slow"]["rel_diff_R"] == ""  # no paper value: no difference, and no KeyError
    assert float(rows["decay-fast"]["rel_diff_R"]) == pytest.approx(float(rows["decay-fast"]["R"]) - 1)
    for name in ("fig2.png", "fig2.svg", "fig3.png", "patterns.png", "controls.md", "controls.png", "claims.md"):
        assert (folder / name).stat().st_size > 0, name
    controls = json.loads((folder / "controls.json").read_text())
    for row_id, a in (("decay-slow", 0.05), ("decay-fast", 0.2)):
        assert controls[row_id]["frozen"]["R"]["mean"] == pytest.approx(1.0 / (a * 0.5), rel=1e-12)
        assert controls[row_id]["balanced"]["R"]["mean"] == pytest.approx(1.0, rel=1e-12)
    controls_md = (folder / "controls.md").read_text()
    assert "| decay-slow | x held at x0 | " in controls_md and "| decay-fast | x held at s/a | " in controls_md
    own = json.loads((folder / "claims.json").read_text())["own"]
    for row_id, a in (("decay-slow", 0.05), ("decay-fast", 0.2)):
        distance = abs(closed_form(a)[2] - 1)
        verdict = own[row_id]["the relaxation ends in balance"]
        assert verdict.startswith("supported" if distance < 0.01 else "not supported")
        assert f"{distance:.2%} from 1 over 2 seed(s)" in verdict
    page = (folder / "index.html").read_text()
    assert "The systems&#x27; own claims" in page or "The systems' own claims" in page
    assert "x held at s/a" in page and "the relaxation ends in balance" in page
    saved = (folder / "table1.csv").read_bytes()
    (folder / "table1.csv").unlink()
    assert main(["report", str(folder)]) == 0
    assert (folder / "table1.csv").read_bytes() == saved


def test_a_new_system_gets_its_own_subcommand_from_its_config_fields(decay, tmp_path, capsys):
    assert main(["decay", "--rate", "0.2", "--steps", "60", "--quiet", "--json", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    m_react, m_diff, final = closed_form(0.2)
    assert summary["R"] == pytest.approx(m_react / m_diff, rel=1e-12)
    assert summary["setting"] == "a = 0.2" and summary["system"] == "decay"
    config = json.loads((tmp_path / summary["run_dir"].split("/")[-1] / "config.json").read_text())
    assert config == {"system": "decay", "rate": 0.2, "source": 1.0, "x0": 0.5, "dt": 1.0, "steps": 60, "seed": 0}
    assert main(["decay", "--rate", "20", "--quiet", "--out", str(tmp_path / "bad")]) == 2
    assert "rate * dt must be in (0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_a_new_system_profile_values_are_type_checked(decay, tmp_path, capsys):
    profile = tmp_path / "bad.toml"
    profile.write_text('[rows.decay-x]\nsystem = "decay"\nrate = "fast"\n')
    assert main(["reproduce", "--profile", str(profile), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "rate must be a number, got 'fast'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_new_system_s_wall_time_counts_its_work(decay, tmp_path, monkeypatch):
    import time

    from rdlens.run import run

    plain = Decay.execute

    def slow(self, config, prepared, ctx):
        time.sleep(0.2)
        return plain(self, config, prepared, ctx)

    monkeypatch.setattr(Decay, "execute", slow)
    rd, summary = run(decay, DecayConfig(), out=tmp_path)
    assert 0.2 <= summary["wall_time_s"] < 60
    assert json.loads((rd.path / "manifest.json").read_text())["timings_s"]["execute"] >= 0.2


def test_closed_form_is_what_the_recursion_gives():
    a, s, x0, T = 0.2, 1.0, 0.5, 60
    xs = [x0]
    for _ in range(T - 1):
        xs.append(xs[-1] + (s - a * xs[-1]))
    m_react, m_diff, final = closed_form(a)
    assert m_diff == pytest.approx(a * np.mean(xs), rel=1e-13) and m_react == 1.0
    assert final == pytest.approx(s / (a * xs[-1]), rel=1e-13) and math.isfinite(final)


class BareDecay(Decay):
    """The same relaxation from a plug-in that defines no controls."""

    name = "bare-decay"
    title = "Bare decay"
    controls = systems.System.controls


def test_an_own_profile_runs_its_own_rows_only_with_no_paper_columns_and_says_why_a_row_has_no_controls(
        decay, tmp_path):
    systems.register(BareDecay())
    try:
        profile = tmp_path / "own.toml"
        profile.write_text('paper_rows = false\n[rows.mine]\nsystem = "decay"\nrate = 0.1\n'
                           '[rows.bare]\nsystem = "bare-decay"\nrate = 0.2\n')
        assert main(["reproduce", "--profile", str(profile), "--controls", "--quiet", "--out", str(tmp_path)]) == 0
        folder = tmp_path / "reproduce-own"
        assert [r["id"] for r in json.loads((folder / "rows.json").read_text())["rows"]] == ["mine", "bare"]
        table = (folder / "table1.md").read_text()
        assert "paper R" not in table and "Lo, Nishimura" not in table and "| mine | Decay |" in table
        assert not (folder / "differences.md").exists() and "Differences from the public code" not in table
        controls = (folder / "controls.md").read_text()
        assert "| mine | measured |" in controls
        assert "**bare** (bare): no controls: its system (bare-decay) defines none" in controls
    finally:
        systems.unregister("bare-decay")


def test_a_profile_without_paper_rows_must_declare_its_own(tmp_path, capsys):
    profile = tmp_path / "empty.toml"
    profile.write_text("paper_rows = false\n[rows.rd-spot]\nF = 0.03\n")
    assert main(["reproduce", "--profile", str(profile), "--out", str(tmp_path / "o")]) == 2
    assert "paper_rows = false leaves no rows" in capsys.readouterr().err and not (tmp_path / "o").exists()
