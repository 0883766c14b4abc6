"""Reports drawn from saved results only: ``rdlens report FOLDER`` recomputes nothing.
(The figures of one run are :mod:`rdlens.plot`, which the systems use too.)

    table.py          Table 1 as Markdown, CSV, JSON and LaTeX
    paper_figures.py  Fig. 2, Fig. 3 and patterns.png of a reproduce folder
    controls.py       controls.md, controls.json and controls.png

:func:`build_report` reads ``rows.json`` and every row's traces once and writes them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from rdlens.core import layout
from rdlens.core.balance import BalanceTrace, combine
from rdlens.core.errors import ConfigError
from rdlens.core.study import verify
from rdlens.core.rundir import atomic_write_text, dumps

__all__ = ["build_report", "published_files"]


def _load_traces(folder: Path, info: dict) -> dict[str, list[BalanceTrace]]:
    """Every seed's trace of every row that ran; a missing or damaged file is named."""
    out = {}
    for r in info["rows"]:
        if r["status"] == "skipped":
            continue
        traces = []
        for s in info["seeds"]:
            run_dir = layout.seed_dir(folder, r["id"], s)
            damage = verify(run_dir)
            if damage:
                raise ConfigError(f"row {r['id']} seed {s}: {damage}; rerun rdlens reproduce to recompute it")
            path = run_dir / "trace.csv"
            try:
                traces.append(BalanceTrace.load(path))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{path}: cannot be read as a trace ({exc}); rerun rdlens reproduce to "
                                  "recompute that row") from None
        out[r["id"]] = traces
    return out


def build_report(folder: str | os.PathLike) -> str:
    """Write table1.{md,csv,json,tex}, fig2.{png,svg}, fig3.png, patterns.png, quality.md (when
    rows carry a sample-quality measure), differences.md (which side of each difference from the
    public code the rows took) and, for a run with controls, controls.{md,json,png},
    from the saved rows of a reproduce folder;
    return the Markdown table (and controls)."""
    from rdlens import public_code
    from rdlens.report import controls, paper_figures, table

    folder = Path(folder)
    info = layout.read_rows(folder)
    for r in info["rows"]:
        _fill_old_row(r)
    traces = _load_traces(folder, info)
    records = table.records(info, traces)
    seeds = info["seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    md = table.table_markdown(records, f"Table 1 reproduced (profile {info['profile']}, {seed_text})")
    configs = public_code.folder_configs(folder, info)
    differences = public_code.markdown(configs) if public_code.concerns(configs) else ""
    if differences:
        atomic_write_text(folder / "differences.md", differences)
    else:  # only rows of systems the public code does not have: nothing to compare
        (folder / "differences.md").unlink(missing_ok=True)
    atomic_write_text(folder / "table1.md", md + ("\n" + differences if differences else ""))
    quality_md = table.quality_markdown(folder, info)
    if quality_md:
        atomic_write_text(folder / "quality.md", quality_md.lstrip("\n"))
        md += quality_md
    md += ("\n" + differences) if differences else ""
    atomic_write_text(folder / "table1.csv", table.table_csv(records))
    atomic_write_text(folder / "table1.json", dumps({"profile": info["profile"], "seeds": seeds, "rows": records}))
    atomic_write_text(folder / "table1.tex", table.table_latex(records))
    pairs = [(rec, combine(traces[rec["row"]], grid=1001)) for rec in records if rec["status"] != "skipped"]
    if pairs:
        paper_figures.plot_fig2(pairs, folder / "fig2")
        paper_figures.plot_fig3(pairs, folder / "fig3.png")
        paper_figures.plot_patterns(folder, records, seeds[0], folder / "patterns.png")
    if info.get("controls"):
        md += "\n" + controls.build(folder, records, seeds)
    if info.get("claims") or any((layout.seed_dir(folder, r["id"], s) / "claims.json").exists()
                                 for r in info["rows"] for s in seeds):
        from rdlens.report import claims

        claims_md, claims_data = claims.build(folder, info, records)
        atomic_write_text(folder / "claims.md", claims_md)
        atomic_write_text(folder / "claims.json", dumps(claims_data))
        md += "\n" + claims_md
    from rdlens.report import html

    html.write_page(folder, info)
    return md


PUBLISHED = ("plan.json", "rows.json", "embeds.json", "table1.md", "table1.csv", "table1.json", "table1.tex",
             "differences.md", "quality.md", "fig2.png", "fig2.svg", "fig3.png", "fig3.svg", "patterns.png",
             "patterns.svg", "controls.md", "controls.json", "controls.png", "controls.svg", "claims.md",
             "claims.json", "index.html")
"""what a reproduce folder publishes, where it has it"""


def published_files(folder: str | os.PathLike) -> list[str]:
    """The files of a reproduce folder that its summary.json vouches for: its tables, figures,
    page and the summary of every row and seed it shows (which vouch for the row's own files)."""
    folder = Path(folder)
    info = layout.read_rows(folder)
    rows = [str(layout.seed_dir(folder, r["id"], s).relative_to(folder) / "summary.json")
            for r in info["rows"] if r["status"] != "skipped" for s in info["seeds"]]
    return [name for name in PUBLISHED if (folder / name).is_file()] + rows


def _fill_old_row(r: dict) -> None:
    """Rows written before rows.json carried titles and paper values: take them from the
    registry and the paper's table."""
    if "title" not in r:
        from rdlens.systems import style_of

        r["title"] = style_of(r["system"]).title
    if "paper" not in r:
        from dataclasses import asdict

        from rdlens.paper import TABLE1

        r["paper"] = asdict(TABLE1[r["id"]]) if r["id"] in TABLE1 else None
