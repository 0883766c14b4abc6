"""The studies: one command fills a folder in named stages through :mod:`rdlens.core.study`.

:mod:`rdlens.studies.reproduce` (Table 1's rows x seeds), :mod:`rdlens.studies.patterns`
(Gray-Scott, a DDPM and a ConvLSTM on one task), :mod:`rdlens.studies.sweep` ((F, k) maps),
and :mod:`rdlens.studies.tasks` (stages in worker processes or on a Dask cluster). This
package's own :func:`report` takes any of them by its kind (``rdlens report DIR``); it imports
the studies and the report only when called, so that a worker importing one study loads no
other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from rdlens.core import layout
from rdlens.core.errors import ConfigError
from rdlens.core.study import claim, kind_of, verify


def report(folder: str | os.PathLike, embed: list[str | os.PathLike] | None = None, dpi: int | None = None) -> str:
    """``rdlens report FOLDER``: rebuild what the study in ``folder`` publishes from its
    verified stages, recomputing nothing, and return its table (Markdown). The kind of study
    (reproduce, patterns, sweep) is read from the folder; ``embed`` (reproduce only) names the
    studies its page shows (see :func:`rdlens.studies.reproduce.reproduce`); ``dpi`` (sweep only) the
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
        from rdlens.studies.patterns import rebuild

        rebuild(folder)
        return (folder / "table.md").read_text()
    if kind == "sweep":
        from rdlens.studies.sweep import rebuild

        summary = rebuild(folder, dpi=dpi)
        return (f"sweep of {summary['points']} points: "
                + ", ".join(f"{n} {c}" for c, n in summary["classes"].items() if n) + "\n")
    from rdlens.report import build_report, published_files

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
