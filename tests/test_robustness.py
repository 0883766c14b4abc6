"""Hostile input, damaged files and interrupted runs, through the command line: one readable
line (exit 2 for bad input, 1 for a failed run or download, 130 for an interrupt), never a
traceback, and never a result that looks finished but is not. One test per class of case."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import signal
import socketserver
import subprocess
import sys
import threading
import time
import zipfile

from pathlib import Path

import numpy as np
import pytest

from rdlens import images
from rdlens.cli import main


def one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert fragment in err, err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("argv, fragment", [
    (["rd", "--seed", "-1"], "seed must be an integer in [0, 4294967295], got -1"),
    (["lstm", "--seed", "-1"], "seed must be an integer in [0, 4294967295], got -1"),
    (["ddpm", "--seed", "-1"], "seed must be an integer in [0, 4294967295], got -1"),
    (["reproduce", "--seed", "-1", "--rows", "rd-spot"], "seed must be an integer in [0, "),
    (["reproduce", "--seeds", "99999999999999999999"], "seeds must be an integer in [1, 1000]"),
    (["ddpm", "--T", "99999999999999999999"], "--T must be an integer of magnitude at most 2^53"),
    (["lstm", "--hidden", "99999999999999999999"], "--hidden must be an integer of magnitude at most 2^53"),
    (["rd", "--length", "1e-300"], "length must be in [1e-09, 1e+09], got 1e-300"),
    (["rd", "--length", "1e300"], "length must be in [1e-09, 1e+09]"),
    (["rd", "--stop-after", "99999999999999999999"], "--stop-after must be an integer of magnitude"),
    (["rd", "--F", "inf"], "--F must be a finite number, got inf"),
    (["data", "download", "mnist", "--data-dir", "DIR", "--timeout", "nan"], "timeout must be a number of seconds"),
    (["data", "download", "mnist", "--data-dir", "DIR", "--timeout", "0"], "timeout must be a number of seconds"),
    (["ddpm", "--groups", "0"], "groups must be an integer in [1, "),
    (["ddpm", "--groups", "-1"], "groups must be an integer in [1, "),
    (["ddpm", "--network", "public-code", "--heads", "-1"], "heads must be an integer in [1, "),
    (["reproduce", "--profile", "smoke", "--rows", "rd-spot", "--jobs", "0"], "--jobs must be an integer in [1, 256]"),
    (["patterns", "--profile", "smoke", "--jobs", "-3"], "--jobs must be an integer in [1, 256]"),
])
def test_numbers_out_of_range_are_one_line_before_any_work(tmp_path, capsys, argv, fragment):
    argv = [a.replace("DIR", str(tmp_path / "data")) for a in argv]
    assert main([*argv, "--out", str(tmp_path / "runs")] if argv[0] not in ("data",) else argv) == 2
    one_line_error(capsys, fragment)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("scheduler, fragment", [("", "--scheduler must be a Dask scheduler's address"),
                                                 ("tcp://127.0.0.1:9", "cannot reach the Dask scheduler")])
def test_a_sweep_on_a_scheduler_that_is_not_there_leaves_no_folder(tmp_path, capsys, scheduler, fragment):
    pytest.importorskip("dask.distributed")
    assert main(["sweep", "--scheduler", scheduler, "--quiet", "--out", str(tmp_path / "runs")]) == 2
    one_line_error(capsys, fragment)
    assert not (tmp_path / "runs").exists()


def test_a_gpu_that_is_not_there_is_an_error_even_for_rows_that_would_not_use_it(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert main(["reproduce", "--profile", "smoke", "--rows", "rd-spot", "--device", "cuda", "--quiet",
                 "--out", str(tmp_path / "runs")]) == 2
    one_line_error(capsys, "device 'cuda' was asked for, but torch sees no CUDA GPU here")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv", [["rd", "--size", "100000"], ["lstm", "--hidden", "1000000"],
                                  ["lstm", "--n-sequences", "1000000000"], ["ddpm", "--channels", "100000"],
                                  ["ddpm", "--T", "1000000000"], ["ddpm", "--batch-size", "100000000"],
                                  ["ddpm", "--quality-samples", "100000000000"]])
def test_sizes_that_cannot_fit_are_refused_with_the_estimate(tmp_path, capsys, argv):
    assert main([*argv, "--quiet", "--out", str(tmp_path)]) == 2
    err = one_line_error(capsys, "")
    assert ("needs about" in err and "is available" in err) or "size must be <= 32768" in err
    assert list(tmp_path.iterdir()) == []


def test_paths_that_cannot_be_used_are_named(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["rd", "--steps", "10", "--quiet", "--out", str(afile)]) == 2
    one_line_error(capsys, "is a file, not a folder")
    assert main(["lstm", "--resume", str(afile), "--quiet"]) == 2
    one_line_error(capsys, "no such run directory")
    assert main(["lstm", "--resume", str(tmp_path / "missing"), "--quiet"]) == 2
    one_line_error(capsys, "no such run directory")
    assert not (tmp_path / "missing").exists()  # --resume never creates the folder
    for mirror in ("notaurl", "http://[::1", ""):
        assert main(["data", "download", "mnist", "--data-dir", str(tmp_path / "d"), "--mirror", mirror]) == 2
        one_line_error(capsys, "--mirror must be an http://, https:// or file:// URL")
    assert main(["reproduce", "--profile", "smoke", "--rows", "rd-spot", "--out", str(afile), "--quiet"]) == 2
    one_line_error(capsys, "is a file, not a folder")


def _npz_claiming(path, shape):
    """An .npz whose 'u' header claims ``shape`` but holds almost no data."""
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("u.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            fh.write(b"\0" * 64)
        with zf.open("v.npy", "w") as fh:
            np.lib.format.write_array(fh, np.zeros((8, 8)))


def test_damaged_or_hostile_init_files_are_refused(tmp_path, capsys):
    np.save(tmp_path / "bare.npy", np.zeros((8, 8)))
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "ok.npz", u=np.ones((16, 16)), v=np.zeros((16, 16)))
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    np.savez(tmp_path / "complex.npz", u=np.ones((16, 16)) * 1j, v=np.zeros((16, 16)))
    _npz_claiming(tmp_path / "huge.npz", (99999, 99999))
    cases = {"bare.npy": "not a readable .npz", "empty.npz": "not a readable .npz", "trunc.npz": "not a readable .npz",
             "complex.npz": "holds complex128 values", "huge.npz": "has shape (99999, 99999)"}
    for name, fragment in cases.items():
        assert main(["rd", "--init", str(tmp_path / name), "--length", "0.16", "--quiet",
                     "--out", str(tmp_path / "runs")]) == 2, name
        one_line_error(capsys, fragment)
    assert not (tmp_path / "runs").exists()


def test_init_file_keeps_its_grid_spacing(tmp_path, capsys):
    assert main(["rd", "--size", "32", "--length", "0.32", "--steps", "20", "--save-state", "--quiet", "--json",
                 "--out", str(tmp_path)]) == 0
    state = tmp_path / json.loads(capsys.readouterr().out)["run_dir"].split("/")[-1] / "state.npz"
    assert main(["rd", "--init", str(state), "--steps", "20", "--quiet", "--json", "--out", str(tmp_path)]) == 0
    cfg = json.loads((tmp_path / json.loads(capsys.readouterr().out)["run_dir"].split("/")[-1] / "config.json")
                     .read_text())
    assert cfg["model"]["length"] == 0.32 and cfg["model"]["size"] == 32  # taken from the file
    assert main(["rd", "--init", str(state), "--length", "2.0", "--quiet", "--out", str(tmp_path / "x")]) == 2
    one_line_error(capsys, "was saved on a grid of spacing h = 0.01")
    np.savez(tmp_path / "foreign.npz", u=np.ones((16, 16)), v=np.zeros((16, 16)))
    assert main(["rd", "--init", str(tmp_path / "foreign.npz"), "--quiet", "--out", str(tmp_path / "x")]) == 2
    one_line_error(capsys, "records no domain length")


def test_damaged_data_files_are_named(tmp_path, capsys):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    header = b"\0\0\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    good = gzip.compress(header + bytes(10 * 784))
    (raw / "train-images-idx3-ubyte.gz").write_bytes(good[: len(good) // 2])
    assert main(["ddpm", "--dataset", "mnist", "--data-dir", str(tmp_path), "--quiet", "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "damaged gzip file")
    corrupt = bytearray(good)
    corrupt[-6] ^= 0xFF  # the CRC-32 of the decompressed bytes no longer matches
    (raw / "train-images-idx3-ubyte.gz").write_bytes(bytes(corrupt))
    assert main(["ddpm", "--dataset", "mnist", "--data-dir", str(tmp_path), "--quiet", "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "damaged gzip file")
    absurd = b"\0\0\x08\x03" + (2**31).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(absurd + bytes(784)))
    assert main(["ddpm", "--dataset", "mnist", "--data-dir", str(tmp_path), "--quiet", "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "IDX header says")
    # the whole plan is checked before the first row: no row ran
    assert main(["reproduce", "--profile", "smoke", "--data-dir", str(tmp_path), "--quiet",
                 "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "IDX header says")
    assert not (tmp_path / "r").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(tmp_path, capsys):
    args = ["lstm", "--n-sequences", "20", "--length", "20", "--steps", "4", "--batch-size", "4", "--quiet", "--json",
            "--device", "cpu", "--out", str(tmp_path)]
    assert main(args) == 0
    run = tmp_path / json.loads(capsys.readouterr().out)["run_dir"].split("/")[-1]
    (run / "summary.json").unlink()
    (run / "checkpoint.pt.sha256").unlink()  # as an older rdlens left it: no checksum to catch the edit
    (run / "checkpoint.pt").write_bytes(pickle.dumps({"step": _Evil()}))
    assert main(["lstm", "--resume", str(run), "--quiet"]) == 2
    one_line_error(capsys, "is not a weights-only checkpoint")
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04truncated")
    assert main(["lstm", "--resume", str(run), "--quiet"]) == 2
    one_line_error(capsys, "is damaged")


def test_a_model_that_goes_nan_is_not_stored_as_finished(tmp_path, capsys):
    args = ["lstm", "--n-sequences", "20", "--length", "20", "--steps", "1", "--batch-size", "4", "--lr", "1e308",
            "--quiet", "--device", "cpu", "--out", str(tmp_path)]
    assert main(args) == 1
    err = one_line_error(capsys, "diverged")
    assert "no result was written" in err
    assert not list(tmp_path.rglob("summary.json"))


def test_a_dying_pattern_is_flagged_not_printed_as_a_ratio_of_zeros(tmp_path, capsys):
    assert main(["rd", "--F", "0.02", "--k", "0.07", "--size", "48", "--length", "0.48", "--steps", "3000",
                 "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "final R = undefined" in out and "degenerate trace: reaction and diffusion both vanish" in out
    summary = json.loads(next(tmp_path.rglob("summary.json")).read_text())
    assert summary["final_R"] is None and "vanish" in summary["degenerate"]


@pytest.fixture(scope="module")
def smoke_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("robust")
    assert main(["reproduce", "--profile", "smoke", "--rows", "rd-spot,lstm-sine", "--quiet", "--device", "cpu",
                 "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("damage, fragment", [
    (lambda d: (d / "trace.csv").unlink(), "trace.csv is missing"),
    (lambda d: (d / "trace.csv").write_text(""), "trace.csv differs"),
    (lambda d: (d / "trace.csv").write_text("step,tau,reaction,diffusion\n1,0,nan,nan\n"), "trace.csv differs"),
    (lambda d: (d / "trace_samples.npz").write_bytes(b"PK"), "trace_samples.npz differs"),
    (lambda d: (d / "summary.json").unlink(), "summary.json is missing"),
])
def test_damaged_results_are_named_by_report_and_recomputed_by_reproduce(smoke_rows, capsys, damage, fragment):
    folder = smoke_rows / "reproduce-smoke"
    saved = (folder / "table1.csv").read_bytes()
    damage(folder / "rows" / "lstm-sine" / "seed0")
    assert main(["report", str(folder)]) == 2
    one_line_error(capsys, fragment)
    assert main(["reproduce", "--profile", "smoke", "--rows", "rd-spot,lstm-sine", "--quiet", "--device", "cpu",
                 "--out", str(smoke_rows)]) == 0
    err = capsys.readouterr().err
    assert "lstm-sine seed 0" in err and ("recomputing" in err or "resuming" in err)
    assert "rd-spot seed 0               reused" in err
    assert (folder / "table1.csv").read_bytes() == saved  # the same numbers again


def test_a_truncated_rows_json_is_named(smoke_rows, capsys, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(smoke_rows / "reproduce-smoke", copy)
    text = (copy / "rows.json").read_text()
    (copy / "rows.json").write_text(text[: len(text) // 2])
    assert main(["report", str(copy)]) == 2
    one_line_error(capsys, "rows.json is damaged")


def test_two_reproduce_runs_into_one_folder_are_refused(smoke_rows, capsys):
    from rdlens import study

    folder = smoke_rows / "reproduce-smoke"
    with study.lock(folder, "rdlens reproduce"):
        assert main(["reproduce", "--profile", "smoke", "--rows", "rd-spot", "--quiet", "--out", str(smoke_rows)]) == 2
    one_line_error(capsys, "is being written by rdlens reproduce (pid")


class _BadServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


@pytest.fixture
def bad_server():
    """A server that misbehaves by path: garbage status, a chunked body cut short, a trickle."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline().decode()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            path = line.split()[1] if len(line.split()) > 1 else ""
            if "garbage" in path:
                self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
            elif "chunked" in path:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123")
            elif "trickle" in path:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                for _ in range(40):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)

    srv = _BadServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("path, fragment", [("garbage", "BadStatusLine"), ("chunked", "IncompleteRead"),
                                            ("trickle", "took longer than 0.5 s")])
def test_broken_servers_give_the_one_line_download_error(tmp_path, capsys, bad_server, monkeypatch, path, fragment):
    monkeypatch.setattr(images, "DEADLINE_S", 0.5)
    monkeypatch.setattr(images._fetch, "__defaults__", (0.5,))
    assert main(["data", "download", "mnist", "--data-dir", str(tmp_path / "d"), "--timeout", "5",
                 "--mirror", f"{bad_server}/{path}/"]) == 1
    err = one_line_error(capsys, fragment)
    assert "nothing was left behind" in err
    assert not (tmp_path / "d").exists() or list((tmp_path / "d").rglob("*")) == []


def test_sigterm_stops_a_run_and_names_the_resume_command(tmp_path):
    env = {**os.environ, "RDLENS_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rdlens", "lstm", "--n-sequences", "40", "--length", "40",
                             "--steps", "1000000", "--checkpoint-every", "5", "--batch-size", "8", "--device", "cpu",
                             "--out", str(tmp_path)], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.rglob("checkpoint.pt")):
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "continue with: rdlens lstm --resume" in err
    run = next(tmp_path.iterdir())
    assert not (run / "summary.json").exists() and (run / "checkpoint.pt").exists()


def test_progress_is_plain_lines_when_not_on_a_terminal(tmp_path):
    from rdlens.cli import PlainProgress

    lines = []
    bar = PlainProgress("LSTM sine", 10, every=0.0)
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), bar:
        for _ in range(10):
            bar.update(1)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("LSTM sine: step 1/10 (10%)") and "ETA" in lines[0]
    assert lines[-1].startswith("LSTM sine: step 10/10 (100%)")
    assert len(lines) == 10  # one line per step here (every=0), the last not repeated at the end
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), PlainProgress("DDPM sample", 3, every=1e9) as rare:
        for _ in range(3):
            rare.update(1)
    assert [line.split(",")[0] for line in buf.getvalue().splitlines()] == ["DDPM sample: step 3/3 (100%)"]


def test_progress_eta_of_a_resumed_run_counts_only_the_steps_it_runs(monkeypatch):
    """A resumed run reports its 2250 finished steps at once; the ETA must come from the 0.6 s
    steps that follow (1740 left: 1044 s), not from 2260 steps in 6 s (5 s)."""
    import contextlib
    import io
    import time

    from rdlens.cli import PlainProgress

    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        bar = PlainProgress("DDPM train", 4000, every=1e9)
        bar.update(2250)
        for _ in range(10):
            clock[0] += 0.6
            bar.update(1)
        bar.every = 0.0
        clock[0] += 0.6
        bar.update(1)
    line = buf.getvalue().splitlines()[-1]
    assert line.startswith("DDPM train: step 2261/4000 (57%), 7 s elapsed")
    assert line.endswith(f"ETA {1739 * 0.6:.0f} s")


# ---- issue 27: paths, absurd sizes, damaged checkpoints and configs, saved parameters ---------


def _tiny_lstm(tmp_path, capsys) -> Path:
    """A finished tiny LSTM run turned into an unfinished one (its summary removed)."""
    args = ["lstm", "--n-sequences", "20", "--length", "20", "--steps", "4", "--batch-size", "4", "--quiet",
            "--json", "--device", "cpu", "--checkpoint-every", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    run = tmp_path / json.loads(capsys.readouterr().out)["run_dir"].split("/")[-1]
    (run / "summary.json").unlink()
    return run


def _rewrite(run: Path, change) -> None:
    """Load the checkpoint, change it, and save it the way rdlens does (checksum included), so
    that only the check of its content can find what is wrong."""
    import torch

    from rdlens.torchutil import save_checkpoint

    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    save_checkpoint(run / "checkpoint.pt", state)


@pytest.mark.parametrize("change, fragment", [
    (lambda s: s.pop("generator"), "it lacks generator"),
    (lambda s: s.pop("losses"), "it lacks losses"),
    (lambda s: s.update(step=10**9), "its step 1000000000 is not an integer in [0, 4]"),
    (lambda s: s.update(step=-3), "its step -3 is not an integer in [0, 4]"),
    (lambda s: s.update(step="4"), "its step '4' is not an integer"),
    (lambda s: s["losses"].__setitem__(1, float("nan")), "not finite"),
    (lambda s: s.update(generator=s["generator"][:100]), "does not fit this run"),
    (lambda s: s.update(model="weights"), "its model is a str, not a state dict"),
    (lambda s: s["model"].__setitem__(next(iter(s["model"])), s["model"][next(iter(s["model"]))] * float("nan")),
     "weights are not finite"),
])
def test_a_checkpoint_is_checked_as_a_whole_before_a_resume_uses_it(tmp_path, capsys, change, fragment):
    run = _tiny_lstm(tmp_path, capsys)
    _rewrite(run, change)
    assert main(["lstm", "--resume", str(run), "--quiet"]) == 2
    one_line_error(capsys, fragment)
    assert not (run / "summary.json").exists()


def test_a_flipped_bit_in_a_checkpoint_is_found_by_its_checksum(tmp_path, capsys):
    run = _tiny_lstm(tmp_path, capsys)
    data = bytearray((run / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0x10
    (run / "checkpoint.pt").write_bytes(bytes(data))
    assert main(["lstm", "--resume", str(run), "--quiet"]) == 2
    one_line_error(capsys, "differs from the checkpoint rdlens wrote")


def test_an_edited_config_json_is_refused_with_its_key(tmp_path, capsys):
    run = _tiny_lstm(tmp_path, capsys)
    saved = json.loads((run / "config.json").read_text())
    for key, value, fragment in (("steps", "4", "steps must be an integer, got '4'"),
                                 ("lr", [1], "lr must be a number, got [1]"),
                                 ("colour", 3, "unknown key 'colour'")):
        (run / "config.json").write_text(json.dumps({**saved, key: value}))
        assert main(["lstm", "--resume", str(run), "--quiet"]) == 2
        one_line_error(capsys, fragment)
    (run / "config.json").write_text(json.dumps({**saved, "data": {**saved["data"], "length": "long"}}))
    assert main(["lstm", "--resume", str(run), "--quiet"]) == 2
    one_line_error(capsys, "config.json: data: length must be an integer")


def test_an_init_file_whose_saved_parameters_are_not_valid_is_refused(tmp_path, capsys):
    from rdlens import grayscott

    m = grayscott.GrayScott(size=16, length=0.16)
    u, v = grayscott.pearson_init(m, 0)
    for key, value, fragment in (("F", float("nan"), "saved F = nan"), ("dt", -1.0, "saved dt = -1.0"),
                                 ("length", 0.0, "saved length = 0.0")):
        path = tmp_path / f"bad-{key}.npz"
        np.savez(path, u=u, v=v, **{"length": np.float64(0.16), key: np.float64(value)})
        assert main(["rd", "--init", str(path), "--steps", "2", "--quiet", "--out", str(tmp_path / "o")]) == 2
        one_line_error(capsys, fragment)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [
    ["rd", "--steps", "2", "--quiet", "--out", "/tmp/" + "x" * 300],
    ["rd", "--steps", "2", "--quiet", "--init", "/tmp/" + "y" * 300 + ".npz"],
    ["rd", "--steps", "2", "--quiet", "--out", "/tmp/" + "/".join(["z" * 200] * 25)],
    ["ddpm", "--dataset", "mnist", "--quiet", "--data-dir", "/tmp/" + "d" * 300],
])
def test_a_path_the_file_system_cannot_hold_is_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "at most" in err or "too long" in err, err


def test_an_ode_transient_too_long_to_integrate_is_refused_before_work(tmp_path, capsys):
    assert main(["lstm", "--dataset", "lorenz", "--transient", "1e12", "--quiet", "--out", str(tmp_path)]) == 2
    one_line_error(capsys, "at most 1e+08 are allowed")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", [["patterns", "--profile", "smoke"], ["sweep", "--F", "0.03:0.03:1",
                                                                          "--k", "0.06:0.06:1", "--steps", "10",
                                                                          "--samples", "5"]])
def test_a_study_into_a_file_or_a_read_only_folder_is_one_line(tmp_path, capsys, command):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main([*command, "--quiet", "--out", str(afile)]) == 2
    one_line_error(capsys, "is a file, not a folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):
            assert main([*command, "--quiet", "--out", str(locked)]) == 2
            one_line_error(capsys, "is not writable")
            assert not any(locked.iterdir())
    finally:
        locked.chmod(0o700)
    # root may write anywhere by permissions; a file system that refuses it (sysfs) still gives one line
    if Path("/sys/kernel").is_dir() and not Path("/sys/rdlens-test").exists():
        assert main([*command, "--quiet", "--out", "/sys/rdlens-test"]) == 2
        one_line_error(capsys, "/sys/rdlens-test")


def test_correlation_intervals_stay_within_minus_one_and_one():
    from scipy import stats

    from rdlens.balance import correlation_interval

    r = [-0.99, -0.95, -0.7]
    est = correlation_interval(r)
    z = np.arctanh(r)
    half = stats.t.ppf(0.975, 2) * z.std(ddof=1) / np.sqrt(3)
    assert est.low == pytest.approx(np.tanh(z.mean() - half), rel=1e-12)
    assert est.high == pytest.approx(np.tanh(z.mean() + half), rel=1e-12)
    assert est.mean == pytest.approx(np.tanh(z.mean()), rel=1e-12)
    assert -1 < est.low < est.mean < est.high < 1
    with pytest.raises(ValueError, match="in \\[-1, 1\\]"):
        correlation_interval([0.5, 1.5])
