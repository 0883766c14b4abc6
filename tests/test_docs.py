"""The documentation site: every tutorial's Python blocks run as written (in order, in a fresh
folder), and the site builds with mkdocs in strict mode (a broken link or API reference fails).
CI installs the docs extra and sets RDLENS_REQUIRE_DOCS, so there the build cannot be skipped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
NEEDS = {"own-diffusers.md": "diffusers", "sweep-cluster.md": "dask.distributed"}


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def test_every_tutorial_has_code_that_runs():
    assert len(TUTORIALS) >= 5 and all(python_blocks(p) for p in TUTORIALS)


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_as_written(path, tmp_path, monkeypatch, capsys):
    if path.name in NEEDS:
        pytest.importorskip(NEEDS[path.name])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": f"tutorial_{path.stem.replace('-', '_')}"}
    sys.modules[namespace["__name__"]] = type(sys)(namespace["__name__"])  # dataclasses look their module up
    t0 = time.perf_counter()
    try:
        for k, block in enumerate(python_blocks(path)):
            exec(compile(block, f"{path.name}[block {k + 1}]", "exec"), namespace)
    finally:
        sys.modules.pop(namespace["__name__"], None)
        from rdlens import systems

        for name in [n for n in systems.names() if n not in ("rd", "lstm", "ddpm", "convlstm")]:
            systems.unregister(name)
    with capsys.disabled():
        print(f"\n{path.name}: {time.perf_counter() - t0:.1f} s")


def test_the_site_builds_in_strict_mode(tmp_path):
    if shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists():
        if os.environ.get("RDLENS_REQUIRE_DOCS"):
            pytest.fail('RDLENS_REQUIRE_DOCS is set but mkdocs is not installed: pip install -e ".[docs]"')
        pytest.skip('mkdocs is not installed: pip install -e ".[docs]"')
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).parent / "mkdocs")
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("index.html", "tutorials/own-lstm/index.html", "reference/balance/index.html"):
        assert (tmp_path / "site" / page).exists(), page
    assert "BalanceTrace" in (tmp_path / "site" / "reference/balance/index.html").read_text()
