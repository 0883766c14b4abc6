"""The layout of a ``rdlens reproduce`` folder, spelled in this one place::

    FOLDER/
      plan.json                 what was asked: profile, seeds, rows, data folder, controls
      rows.json                 every row: system, setting, data, status (ran, stand-in, skipped), paper values
      rows/<row>/seed<s>/       one run directory per row and seed (see rdlens.systems.run), + controls.json
      table1.{md,csv,json,tex}  fig2.{png,svg}  fig3.{png,svg}  patterns.png  controls.{md,json,png}
      embeds.json               the other studies (patterns, sweep) the page shows, named with --embed
      config.json  manifest.json  summary.json   the study lifecycle's files (rdlens.core.study)

Writers (:mod:`rdlens.studies.reproduce`) and readers (:mod:`rdlens.report`) both go through here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rdlens.core.errors import ConfigError
from rdlens.core.rundir import write_json

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


EMBEDS = "embeds.json"
EMBEDDABLE = ("patterns", "sweep")
"""the studies a reproduce page can show beside Table 1"""


def check_embeds(folder: str | os.PathLike, embed: list[str | os.PathLike] | None) -> list[dict[str, str]] | None:
    """The studies ``embed`` names as embeds.json records them ({kind, path relative to the
    reproduce folder}), each verified as a finished study of an embeddable kind; None for None.
    A ConfigError names the first one that is not."""
    from rdlens.core.study import kind_of, read_summary

    if embed is None:
        return None
    out = []
    for item in embed:
        path = Path(item).expanduser()
        kind = kind_of(path) if path.is_dir() else None
        if kind not in EMBEDDABLE:
            raise ConfigError(f"--embed {item}: not a patterns study or a sweep folder (one of: "
                              f"{', '.join(EMBEDDABLE)})")
        read_summary(path, kind)
        out.append({"kind": kind, "path": os.path.relpath(path.resolve(), Path(folder).resolve())})
    return out


def write_embeds(folder: str | os.PathLike, embeds: list[dict[str, str]]) -> Path:
    return write_json(Path(folder) / EMBEDS, {"embed": embeds})


def read_embeds(folder: str | os.PathLike) -> list[tuple[str, Path, dict[str, Any]]]:
    """(kind, folder, summary) of every study the page embeds, each verified now; a ConfigError
    names one that was moved, damaged or left unfinished since it was named."""
    from rdlens.core.study import read_summary

    path = Path(folder) / EMBEDS
    if not path.exists():
        return []
    try:
        embeds = [(str(e["kind"]), Path(folder) / str(e["path"])) for e in json.loads(path.read_text())["embed"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{path} is damaged; name the studies to show again with --embed") from None
    return [(kind, where, read_summary(where, kind)) for kind, where in embeds]
