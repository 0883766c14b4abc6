"""The kinds of study by name, for the commands that take any of them (``rdlens report``).

This module sits above the studies (:mod:`rdlens.reproduce`, :mod:`rdlens.pattern_study`,
:mod:`rdlens.sweep`) and the report; nothing in the package imports it but the CLI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rdlens import layout
from rdlens.errors import ConfigError
from rdlens.report import build_report, published_files
from rdlens.study import claim, kind_of, verify


def report(folder: str | os.PathLike, embed: list[str | os.PathLike] | None = None, dpi: int | None = None) -> str:
    """``rdlens report FOLDER``: rebuild what the study in ``folder`` publishes from its
    verified stages, recomputing nothing, and return its table (Markdown). The kind of study
    (reproduce, patterns, sweep) is read from the folder; ``embed`` (reproduce only) names the
    studies its page shows (see :func:`rdlens.reproduce.reproduce`); ``dpi`` (sweep only) the
    resolution of its PNG maps."""
    folder = Path(folder)
    kind = kind_of(folder) if folder.is_dir() else None
    if kind is None:
        raise ConfigError(f"{folder} holds no rdlens study (reproduce, patterns or sweep folder)")
    if embed is not None and kind != "reproduce":
        raise ConfigError(f"--embed is for a reproduce folder's page; {folder} holds a {kind} study")
    if dpi is not None and kind != "sweep":
        raise ConfigError(f"--dpi is for a sweep's maps; {folder} holds a {kind} study")
    if kind == "patterns":
        from rdlens.pattern_study import rebuild

        rebuild(folder)
        return (folder / "table.md").read_text()
    if kind == "sweep":
        from rdlens.sweep import rebuild

        summary = rebuild(folder, dpi=dpi)
        return (f"sweep of {summary['points']} points: "
                + ", ".join(f"{n} {c}" for c, n in summary["classes"].items() if n) + "\n")
    embedded = layout.check_embeds(folder, embed)
    previous = _summary(folder) if verify(folder) is None else None
    with claim(folder, "reproduce", {}, compare=False) as study:  # the lock; summary.json is gone while it rebuilds
        if embedded is not None:
            layout.write_embeds(folder, embedded)
        md = build_report(folder)
        if previous is not None:  # a finished study stays finished: its summary vouches for the rebuilt files
            study.vouch(previous, published_files(folder))
    return md


def _summary(folder: Path) -> dict:
    return {k: v for k, v in json.loads((folder / "summary.json").read_text()).items() if k not in ("files", "study")}


__all__ = ["report"]
