"""Property-based fuzzing (Hypothesis) of the option parser and the file readers: whatever a
user types or whatever bytes a file holds, rdlens answers with a finished run, or one line and
exit status 2, never a traceback and never a half-made folder. The example counts are bounded
so that the suite stays fast; raise them with HYPOTHESIS_EXAMPLES to fuzz longer."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rdlens import systems  # noqa: E402
from rdlens.cli import build_parser, main  # noqa: E402
from rdlens.errors import ConfigError  # noqa: E402

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "200"))
COMMANDS = ("rd", "lstm", "ddpm", "convlstm")


class WouldRun(Exception):
    """Raised where a system would start its work: the input was accepted."""


def _stop(self, config, device):
    raise WouldRun


def _options(command: str) -> list[str]:
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[command]
    skip = {"-h", "--help", "--resume", "--json", "--quiet", "--out", "--version"}
    return sorted(s for a in sub._actions for s in a.option_strings if s.startswith("--") and s not in skip)


OPTIONS = {c: _options(c) for c in COMMANDS}
VALUES = st.one_of(
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.integers(min_value=-3, max_value=70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-1.0, max_value=2.0).map(repr),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.sampled_from(["", "-1", "0", "1", "1e308", "-1e-308", "nan", "inf", "1,2", "a,b", "0.5:0.6:3", "cuda",
                     "auto", "2,,3", "9" * 40]),
)


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from(COMMANDS))
    argv = [command]
    for _ in range(draw(st.integers(1, 3))):
        option = draw(st.sampled_from(OPTIONS[command]))
        argv.append(f"{option}={draw(VALUES)}")  # --x=-1: a negative number is a value, not an option
    return argv


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_any_command_line_is_a_run_or_one_line_and_exit_2(argv, tmp_path, monkeypatch, capsys):
    for system in systems.all_systems():
        monkeypatch.setattr(type(system), "prepare", _stop)
    out = tmp_path / "out"
    outcome = "refused in one line"
    try:
        code = main([*argv, "--quiet", "--out", str(out)])
    except WouldRun:
        code, outcome = 0, "accepted: the work would start"
    except SystemExit as exc:  # argparse: a value of the wrong form (usage and one error line)
        code, outcome = exc.code, "refused by the parser"
        assert code == 2
    hypothesis.event(outcome)
    err = capsys.readouterr().err
    assert "Traceback" not in err, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2 and "usage:" not in err:
        assert len(err.strip().splitlines()) == 1, (argv, err)
    assert not out.exists() or not any(out.iterdir()), (argv, sorted(out.rglob("*")))


# ---- the file readers ----------------------------------------------------------------------


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


ARRAYS = st.dictionaries(
    st.sampled_from(["u", "v", "F", "k", "length", "dt", "Du", "Dv"]),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(np.float64),
        st.integers(0, 3).flatmap(lambda n: st.just(np.zeros((n, n)))),
        st.just(np.full((16, 16), np.nan)), st.just(np.ones((16, 8))), st.just(np.array(["a"])),
        st.just(np.random.default_rng(0).random((16, 16))),
    ), max_size=8)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=200), ARRAYS.map(_npz), st.binary(max_size=60).map(lambda b: b"PK\x03\x04" + b)))
def test_any_init_file_is_read_or_refused_with_a_config_error(content, tmp_path):
    from rdlens import grayscott

    path = tmp_path / "init.npz"
    path.write_bytes(content)
    try:
        u, v = grayscott.load_state(path)
        grayscott.state_metadata(path)
    except ConfigError:
        return
    assert u.shape == v.shape and u.shape[0] >= 8 and np.isfinite(u).all() and np.isfinite(v).all()
    try:
        grayscott.check_state(grayscott.GrayScott(size=u.shape[0], length=0.01 * u.shape[0]), u, v, source=str(path))
    except ConfigError:
        pass


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                         st.lists(st.lists(st.sampled_from(["1", "0", "nan", "-1", "x", "", "1e400"]), min_size=1,
                                           max_size=5), max_size=6).map(
                             lambda rows: ("step,tau,reaction,diffusion\n"
                                           + "".join(",".join(r) + "\n" for r in rows)).encode())))
def test_any_trace_or_summary_file_is_read_or_refused_with_a_config_error(content, tmp_path):
    from rdlens import layout, study
    from rdlens.balance import BalanceTrace

    (tmp_path / "trace.csv").write_bytes(content)
    try:
        BalanceTrace.load(tmp_path / "trace.csv")
    except (ConfigError, ValueError):
        pass
    for name in ("rows.json", "summary.json", "config.json"):
        (tmp_path / name).write_bytes(content)
    for read in (lambda: layout.read_rows(tmp_path), lambda: study.read_summary(tmp_path, "sweep"),
                 lambda: study.verify(tmp_path), lambda: study.kind_of(tmp_path)):
        try:
            read()
        except ConfigError:
            pass


@settings(max_examples=max(10, EXAMPLES // 3), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=300), st.binary(max_size=100).map(lambda b: b"PK\x03\x04" + b)))
def test_any_checkpoint_bytes_are_refused_with_a_config_error(content, tmp_path):
    from rdlens.torchutil import load_checkpoint

    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(ConfigError):
        load_checkpoint(path)


def test_the_fuzzer_reaches_every_system_command():
    assert all(len(OPTIONS[c]) >= 5 for c in COMMANDS)
    assert "--steps" in OPTIONS["rd"] and "--channels" in OPTIONS["ddpm"] and "--window" in OPTIONS["convlstm"]


def test_a_real_run_of_accepted_input_leaves_a_finished_folder(tmp_path):
    """The fuzzer stops accepted input where the work would start; one real run shows the rest."""
    assert main(["rd", "--steps", "3", "--size", "16", "--length", "0.16", "--quiet", "--out", str(tmp_path)]) == 0
    (run,) = [p for p in Path(tmp_path).iterdir()]
    assert (run / "summary.json").exists()
