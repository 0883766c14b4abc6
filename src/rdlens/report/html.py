"""index.html: one self-contained page for a reproduce folder, to open in a browser and share.

Everything is inside the file: the tables (rendered from the Markdown files the report wrote)
and the figures (embedded PNGs), so it needs no network and no other file. It shows Table 1
beside the paper, the figures, sample quality, controls, the claims with their verdicts, the
differences from the public code, and the other studies the user named with ``--embed`` (a
patterns study, an (F, k) sweep), each verified against its checksums when the page is made. A small script counts the images
that loaded and the tables that rendered into ``data-`` attributes of the body, which the
test reads from a headless browser's DOM.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from rdlens.core import layout
from rdlens.report.table import _est, _num, _pct
from rdlens.core.rundir import atomic_write_text

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0 auto; max-width: 1300px;
       padding: 1.2rem 1.5rem 4rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.4rem; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.6rem; } nav a { margin-right: .9rem; } .muted { color: #666; font-size: .9rem; }
.table-wrap { overflow-x: auto; margin: .6rem 0 1rem; }
table { border-collapse: collapse; font-size: .82rem; }
.story { background: #f6f8fb; border: 1px solid #dde3ec; border-radius: 6px; padding: .6rem 1.1rem; }
.data { font-size: .82rem; color: #555; margin-top: -.4rem; }
th, td { border: 1px solid #d5d5d5; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f5; } tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .86rem; color: #444; } code { background: #f3f3f5; padding: 0 .2rem; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-total', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
  document.body.setAttribute('data-tables', document.querySelectorAll('table').length);
  var cut = Array.prototype.slice.call(document.querySelectorAll('.table-wrap')).filter(function (w) {
    return w.scrollWidth > w.clientWidth + 1; }).length;
  document.body.setAttribute('data-tables-cut', cut);
  document.body.setAttribute('data-ready', 'yes');
});
"""


def _inline(text: str) -> str:
    """Escape, then **bold**, `code`."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", out)


def markdown_to_html(md: str, level_shift: int = 1) -> str:
    """The Markdown that rdlens writes (headings, pipe tables, bullet lists, paragraphs) as
    HTML; headings move down ``level_shift`` levels so the page keeps one h1."""
    lines = md.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            i += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            level = min(6, len(heading.group(1)) + level_shift)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i].strip())
                i += 1
            out.append(_table(rows))
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("|", "#", "- ")):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def _cells(row: str) -> list[str]:
    """A pipe-table row's cells; an escaped pipe (\\|) stays inside its cell."""
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def _table(rows: list[str]) -> str:
    header, body = _cells(rows[0]), [r for r in rows[1:] if not re.match(r"^\|[\s:|-]+\|$", r)]
    head = "".join(f"<th>{_inline(c)}</th>" for c in header)
    trs = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(r)) + "</tr>" for r in body)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table></div>'


def _figure(path: Path, caption: str) -> str:
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_inline(caption)}</figcaption></figure>")


def _section(anchor: str, title: str, body: str) -> tuple[str, str, str]:
    return anchor, title, f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


def _md_file(path: Path, shift: int = 1) -> str:
    return markdown_to_html(path.read_text(), shift) if path.exists() else ""


def _links(folder: Path, names: list[str]) -> str:
    """'Data: a, b' with relative links to the files of ``names`` that exist beside the page."""
    have = [n for n in names if (folder / n).exists()]
    return ("<p class=\"data\">Data: " + ", ".join(f'<a href="{html.escape(n)}">{html.escape(n)}</a>' for n in have)
            + "</p>") if have else ""


def _trace_links(folder: Path, info: dict[str, Any]) -> str:
    """Links to the trace.csv of every row and seed that has one."""
    links = []
    for r in info["rows"]:
        for seed in info["seeds"]:
            path = layout.seed_dir(folder, r["id"], seed) / "trace.csv"
            if path.exists():
                rel = path.relative_to(folder).as_posix()
                links.append(f'<a href="{html.escape(rel)}">{html.escape(r["id"])} seed {seed}</a>')
    return ("<p class=\"data\">Traces (one row per step: reaction, diffusion, R): " + ", ".join(links) + "</p>"
            if links else "")


def story(folder: Path, info: dict[str, Any]) -> str:
    """The page's opening: what R is, each row's key numbers, and every verdict the run has (or
    the flags that add them)."""
    records = json.loads((folder / "table1.json").read_text())["rows"] if (folder / "table1.json").exists() else []
    parts = ["<p><strong>R</strong>, the Dynamic Balance Ratio, is the mean norm of a system's <em>reaction</em> "
             "(what each update creates: the Gray-Scott reaction term, an LSTM's input i·g, a DDPM's denoising "
             "drift) over the mean norm of its <em>diffusion</em> (what spreads or erases: the Laplacian term, the "
             "forgetting (1−f)·C, the injected noise). R &gt; 1: reaction dominates; R &lt; 1: diffusion "
             "dominates; R ≈ 1: the two balance, as in a pattern that holds.</p>"]
    items = []
    for r in records:
        name = f"<strong>{html.escape(r['row'])}</strong> ({html.escape(r['system'])}, {html.escape(r['setting'])})"
        if r["status"] == "skipped":
            items.append(f"<li>{name}: not run ({html.escape(r['note'] or 'skipped')})</li>")
            continue
        seeds = f", {r['n_seeds']} seeds" if r.get("n_seeds", 1) >= 2 else ""
        paper = f" (paper {_num(r['paper_R'])}, {_pct(r['rel_diff_R'])})" if r.get("paper_R") is not None else ""
        items.append(f"<li>{name}: R = {_est(r, 'R')}{paper}, final R {_est(r, 'final_R')}{seeds}</li>")
    if items:
        parts.append("<ul>" + "".join(items) + "</ul>")
    verdicts = []
    if (folder / "claims.json").exists():
        claims = json.loads((folder / "claims.json").read_text())
        for n, c in claims.items():
            if n.isdigit():
                verdicts.append(f"<li>Claim {n}, {html.escape(c['claim'])}: {_inline(c['verdict'])}</li>")
    if (folder / "controls.md").exists():
        verdicts.append('<li>Controls (is R learned, or fixed by the structure of each update?): one verdict per '
                        'row under <a href="#controls">Controls</a>.</li>')
    if verdicts:
        parts.append("<p><strong>Verdicts.</strong></p><ul>" + "".join(verdicts) + "</ul>")
    missing = [flag for flag, file in (("--controls", "controls.md"), ("--claims", "claims.json"))
               if not (folder / file).exists()]
    if missing:
        seeds = info["seeds"]
        ids = [r["id"] for r in info["rows"]]
        command = (f"rdlens reproduce --profile {info['profile']} --rows {','.join(ids)} --seed {seeds[0]} "
                   f"--seeds {len(seeds)} {' '.join(missing)} --out {folder.parent.as_posix()}")
        parts.append(f"<p class=\"muted\">This run has no {' and no '.join(f[2:] for f in missing)}: "
                     f"<code>{html.escape(command)}</code> adds them (finished rows are reused).</p>")
    return '<div class="story">' + "".join(parts) + "</div>"


def page(folder: Path, info: dict[str, Any]) -> str:
    """The page's HTML for a reproduce folder (``info``: its rows.json)."""
    from rdlens import __version__

    sections = [_section("summary", "What this run found", story(folder, info))]
    table1 = (folder / "table1.md").read_text().split("\n## ")[0] if (folder / "table1.md").exists() else ""
    sections.append(_section("table1", "Table 1 beside the paper", markdown_to_html(table1, 2)
                             + _links(folder, ["table1.csv", "table1.json", "table1.tex", "table1.md"])))
    figs = "".join([
        _figure(folder / "fig2.png", "Fig. 2: R(tau) of every row over normalised time, mean over seeds "
                "(colour = system, line style = row); right, the same zoomed on R near 1"),
        _trace_links(folder, info),
        _figure(folder / "fig3.png", "Fig. 3: final R of every row (R at the last step; mean over seeds with its "
                "95 % interval where there are several)"),
        _links(folder, ["table1.csv"]),
        _figure(folder / "patterns.png", "What each row produced: RD fields, LSTM predictions, DDPM samples")])
    sections.append(_section("figures", "Figures", figs))
    if (folder / "quality.md").exists():
        sections.append(_section("quality", "Sample quality of the DDPMs", _md_file(folder / "quality.md", 2)))
    if (folder / "controls.md").exists():
        sections.append(_section("controls", "Controls: is R learned?", _md_file(folder / "controls.md", 2)
                                 + _figure(folder / "controls.png", "Trained rows against their controls")
                                 + _links(folder, ["controls.json"])))
    if (folder / "claims.md").exists():
        claims_md = (folder / "claims.md").read_text().split("\n", 1)[1]
        sections.append(_section("claims", "The paper's claims, tested", markdown_to_html(claims_md, 1)
                                 + _links(folder, ["claims.json"])))
    if (folder / "differences.md").exists():
        sections.append(_section("differences", "Differences from the public code",
                                 _md_file(folder / "differences.md", 2)))
    for kind, where, summary in layout.read_embeds(folder):
        if kind == "patterns":
            sections.append(_section("patterns", "Turing patterns by the three systems (rdlens patterns)",
                                     f"<p class=\"muted\">{html.escape(str(where))}</p>" + _md_file(where / "table.md", 2)
                                     + _figure(where / "patterns.png", "Example v fields, one colour scale")
                                     + _figure(where / "balance.png", "Each system's R(tau) on this task")
                                     + _figure(where / "drift.png", "The ConvLSTM's long rollout vs the true dynamics")))
        elif kind == "sweep":
            c = summary.get("classes", {})
            text = (f"<p>{summary.get('points', '?')} points of the (F, k) plane ({html.escape(where.name)}): "
                    + html.escape(", ".join(f"{n} {k}" for k, n in c.items() if n)) + ".</p>")
            sections.append(_section("sweep", "The (F, k) sweep", text + _figure(where / "maps.png",
                                                                                   "R, residual and class maps")))
    nav = " ".join(f'<a href="#{anchor}">{html.escape(title)}</a>' for anchor, title, _ in sections)
    seeds = info["seeds"]
    head = (f"<h1>rdlens: reaction and diffusion on one scale</h1><p class=\"muted\">Profile "
            f"{html.escape(str(info['profile']))}, seed(s) {', '.join(map(str, seeds))}, rdlens {__version__}. "
            f"{html.escape(info.get('description', ''))}</p><nav>{nav}</nav>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>rdlens report: {html.escape(str(info['profile']))}</title><style>{STYLE}</style></head>"
            f"<body>{head}\n" + "\n".join(body for _, _, body in sections) + f"<script>{SCRIPT}</script></body></html>\n")


def write_page(folder: Path, info: dict[str, Any]) -> Path:
    """Write ``index.html`` into the reproduce folder."""
    path = folder / "index.html"
    atomic_write_text(path, page(folder, info))
    return path


__all__ = ["markdown_to_html", "page", "write_page"]
