"""The layout of a ``rdlens reproduce`` folder, spelled in this one place::

    FOLDER/
      plan.json                 what was asked: profile, seeds, rows, data folder, controls
      rows.json                 every row: system, setting, data, status (ran, stand-in, skipped), paper values
      rows/<row>/seed<s>/       one run directory per row and seed (see rdlens.run), + controls.json
      table1.{md,csv,json,tex}  fig2.{png,svg}  fig3.{png,svg}  patterns.png  controls.{md,json,png}

Writers (:mod:`rdlens.reproduce`) and readers (:mod:`rdlens.report`) both go through here.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

from rdlens.errors import ConfigError
from rdlens.rundir import write_json

PLAN = "plan.json"
ROWS = "rows.json"


def row_dir(folder: str | os.PathLike, row_id: str) -> Path:
    """The folder holding every seed of one row."""
    return Path(folder) / "rows" / row_id


def seed_dir(folder: str | os.PathLike, row_id: str, seed: int) -> Path:
    """The run directory of one row and seed."""
    return row_dir(folder, row_id) / f"seed{seed}"


def write_rows(folder: str | os.PathLike, info: dict[str, Any]) -> Path:
    return write_json(Path(folder) / ROWS, info)


def read_rows(folder: str | os.PathLike) -> dict[str, Any]:
    """``rows.json`` of a reproduce folder, or a ConfigError naming what is wrong with it."""
    path = Path(folder) / ROWS
    if not path.exists():
        raise ConfigError(f"{folder} has no {ROWS}: not a finished `rdlens reproduce` folder")
    try:
        info = json.loads(path.read_text())
        info["rows"], info["seeds"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is damaged (not the JSON that rdlens reproduce writes); rerun rdlens reproduce") from None
    return info


LOCK = ".rdlens.lock"


@contextlib.contextmanager
def lock(folder: str | os.PathLike, holder: str = "rdlens reproduce") -> Iterator[None]:
    """Hold an exclusive lock on a reproduce folder, or refuse at once if another process
    holds it (two runs writing into one folder would mix their rows)."""
    import fcntl

    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    fh = open(path / LOCK, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            other = fh.read().strip() or "another process"
            raise ConfigError(f"{path} is being written by {other}; wait for it to finish or choose "
                              "another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{holder} (pid {os.getpid()})\n")
        fh.flush()
        yield
    finally:
        fh.close()
