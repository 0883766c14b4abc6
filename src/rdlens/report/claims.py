"""claims.md and claims.json: each of the paper's claims, its numbers and a verdict sentence
made from them (measured by ``rdlens reproduce --claims``; see :mod:`rdlens.systems.lstm.claims` and :mod:`rdlens.systems.ddpm.claims`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

from rdlens.core import layout
from rdlens.core.balance import correlation_interval, t_interval

CLAIM_TITLES = {
    1: "LSTM: peaks of R(t) where the input gate encodes new information, valleys where the forget gate erases",
    2: "DDPM: the ratio is an increasing, monotonic function of time",
    3: "DDPM: R is low because of too few time steps",
    4: "DDPM: without the noise term the reverse process collapses to a single mode",
    5: "DDPM: more complex images require more steps, so CIFAR10's final R is lower",
    6: "R ~ 1 means stable pattern formation",
    7: "DDPM: R << 1 comes from a lack of training",
}
COMPLEXITY = ("ddpm-mnist", "ddpm-fashion-mnist", "ddpm-cifar10")
"""DDPM rows in the paper's order of image complexity"""


def _defined(x: Any) -> bool:
    """A number that is there and finite (JSON writes nan as null)."""
    return isinstance(x, (int, float)) and math.isfinite(x)


def _n(x: Any, spec: str = ".4f") -> str:
    """A number formatted, or — where it is undefined."""
    return format(x, spec) if _defined(x) else "—"


def _seed_claims(folder: Path, row_id: str, seeds: list[int]) -> list[dict[str, Any]]:
    out = []
    for s in seeds:
        path = layout.seed_dir(folder, row_id, s) / "claims.json"
        if path.exists():
            out.append(json.loads(path.read_text()))
    return out


def _measured(found: dict[str, list[dict]], rows: list[dict], system: str) -> Iterator[tuple[dict, list[dict]]]:
    """(row, its seeds' claims) for every row of ``system`` whose claims were measured."""
    for r in rows:
        if r["system"] == system and found.get(r["id"]):
            yield r, found[r["id"]]


def _est(values: list[float]) -> dict[str, Any] | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return t_interval(values).as_dict() if values else None


def _est_r(values: list[float]) -> dict[str, Any] | None:
    """As :func:`_est` for correlation coefficients: on Fisher's z, so the interval stays in [-1, 1]."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    return correlation_interval(values).as_dict() if values else None


def _f(e: dict[str, Any] | None, digits: int = 3) -> str:
    if e is None:
        return "—"
    if e["n"] < 2 or math.isnan(e["low"]):
        return f"{e['mean']:.{digits}f}"
    return f"{e['mean']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def _sign(e: dict[str, Any] | None) -> int:
    """+1 / -1 when the interval (or, for one seed, the value) lies on one side of 0, else 0."""
    if e is None:
        return 0
    lo, hi = (e["mean"], e["mean"]) if e["n"] < 2 or math.isnan(e["low"]) else (e["low"], e["high"])
    return 1 if lo > 0 else -1 if hi < 0 else 0


def claim_gates(found: dict[str, list[dict]], rows: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": {}}
    sentences = []
    for r, claims in _measured(found, rows, "lstm"):
        est = {who: {k: _est_r([c["gates"][who][k] for c in claims]) for k in ("input", "erase")}
               for who in ("trained", "untrained")}
        out["rows"][r["id"]] = est
        t, u = est["trained"], est["untrained"]
        agrees = _sign(t["input"]) > 0 and _sign(t["erase"]) < 0
        same_untrained = _sign(u["input"]) == _sign(t["input"]) and _sign(u["erase"]) == _sign(t["erase"])
        sentences.append(
            f"{r['id']}: R(t) correlates with the input gate at r = {_f(t['input'])} and with the erase activity "
            f"1 - f at r = {_f(t['erase'])} ({len(claims)} seed(s)); "
            + ("the signs agree with the claim" if agrees else "the signs do NOT agree with the claim")
            + f"; an untrained network gives {_f(u['input'])} and {_f(u['erase'])}"
            + (", the same signs: the link follows from R = ||i g|| / ||(1 - f) C|| itself, not from learning."
               if agrees and same_untrained else
               ", close to no link: the trained network learned it." if agrees and all(
                   e is not None and abs(e["mean"]) < 0.2 for e in (u["input"], u["erase"])) else "."))
    out["verdict"] = " ".join(sentences) or "not measured (no LSTM row with claims)"
    return out


def claim_monotonic(found: dict[str, list[dict]], rows: list[dict], seeds: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": {}}
    sentences = []
    for r, claims in _measured(found, rows, "ddpm"):
        m = claims[0]["monotonic"]
        out["rows"][r["id"]] = {"seed": seeds[0], **m}
        t = m["trained"]
        parts = []
        for who, label in (("trained", "trained model"), ("oracle_gaussian", "exact Gaussian-data denoiser"),
                           ("schedule_only", "schedule alone")):
            x = m[who]
            parts.append(f"{label}: {x['count']} falling stretch(es) > {x['tolerance']:.0%}, largest "
                         f"{x['largest_drop']:.1%}" + (f" (R {_n(x['largest_from_R'], '.4f')} -> {_n(x['largest_to_R'], '.4f')}, "
                                                      f"tau {_n(x['largest_from_tau'], '.2f')}-{_n(x['largest_to_tau'], '.2f')})"
                                                      if x["count"] else ""))
        verdict = ("supported: R(tau) rises monotonically (within tolerance)" if t["monotonic"] else
                   "NOT supported: R(tau) falls before it rises")
        same = not t["monotonic"] and not m["oracle_gaussian"]["monotonic"] and not m["schedule_only"]["monotonic"]
        sentences.append(f"{r['id']} (seed {seeds[0]}): {verdict}; " + "; ".join(parts) + "."
                         + (" The exact denoiser and the schedule alone fall too: the dip follows from beta_t, "
                            "not from what the network learned." if same else ""))
    out["verdict"] = " ".join(sentences) or "not measured (no DDPM row with claims)"
    return out


def claim_steps(found: dict[str, list[dict]], rows: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": {}}
    sentences = []
    for r, claims in _measured(found, rows, "ddpm"):
        if not claims[0]["steps"]:
            continue
        c = claims[0]
        steps = c["steps"]
        out["rows"][r["id"]] = {"steps": steps, "trained_T": c["trained_T"], "trained_R": c["trained_R"],
                                "trained_final_R": c["trained_final_R"]}
        lo, hi = steps[0], steps[-1]
        rises = _defined(hi["oracle_R"]) and _defined(lo["oracle_R"]) and hi["oracle_R"] > lo["oracle_R"]
        sentences.append(
            f"{r['id']}: with the total noise fixed, the exact denoiser's R goes from {_n(lo['oracle_R'], '.4f')} at "
            f"T = {lo['T']} to {_n(hi['oracle_R'], '.4f')} at T = {hi['T']} (final R {_n(lo['oracle_final_R'], '.3f')} -> "
            f"{_n(hi['oracle_final_R'], '.3f')}; schedule alone R_score {_n(lo['schedule_only_R_score'], '.4f')} -> "
            f"{_n(hi['schedule_only_R_score'], '.4f')}); the trained model at T = {c['trained_T']}: R "
            f"{_n(c['trained_R'], '.4f')}. "
            + ("More steps raise R, as the claim needs, " if rises else "More steps LOWER R: the claim is NOT "
               "supported; ")
            + _largest(steps))
    out["verdict"] = " ".join(sentences) or "not measured (no DDPM row with claims)"
    return out


def _largest(steps: list[dict[str, Any]]) -> str:
    best = max((s for s in steps if _defined(s["oracle_R"])), key=lambda s: s["oracle_R"], default=None)
    if best is None:
        return "no T gave a defined R."
    where = "far below" if best["oracle_R"] < 0.5 else "near" if abs(best["oracle_R"] - 1) < 0.1 else "below"
    return f"the largest R over T, {best['oracle_R']:.4f} at T = {best['T']}, is {where} 1."


def claim_ddim(found: dict[str, list[dict]], rows: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": {}}
    sentences = []
    for r, claims in _measured(found, rows, "ddpm"):
        sweep = claims[0]["ddim"]
        out["rows"][r["id"]] = sweep
        ddpm_row = next(x for x in sweep if x["eta"] is None)
        det = next((x for x in sweep if x["eta"] == 0), None)
        if det is None:
            continue
        ratio = (det["diversity"] / ddpm_row["diversity"] if _defined(det["diversity"]) and _defined(ddpm_row["diversity"])
                 and ddpm_row["diversity"] else math.nan)
        cover = (f", class coverage {det['coverage']:.2f} vs {ddpm_row['coverage']:.2f}" if "coverage" in det else "")
        collapsed = ratio < 0.5
        sentences.append(
            f"{r['id']}: without noise (DDIM eta = 0, R undefined: M_diff = 0) the samples' mean pairwise distance "
            f"in {det['space']} is {_n(det['diversity'], '.3g')} vs {_n(ddpm_row['diversity'], '.3g')} with the DDPM sampler "
            f"({ratio:.0%}){cover}; "
            + ("the samples collapse toward one mode: supported." if collapsed else
               "they do NOT collapse to one mode: the claim is not supported.")
            + " R by sampler: " + ", ".join(f"{x['sampler']} {x['R']:.4f}" for x in sweep if _defined(x["R"])) + ".")
    out["verdict"] = " ".join(sentences) or "not measured (no DDPM row with claims)"
    return out


def claim_final_R(records: list[dict]) -> dict[str, Any]:
    by = {r["row"]: r for r in records}
    present = [(rid, by[rid]) for rid in COMPLEXITY if rid in by]
    values = {rid: {"final_R": r["final_R"], "low": r["final_R_low"], "high": r["final_R_high"], "n": r["n_seeds"],
                    "status": r["status"]} for rid, r in present}
    ran = [(rid, r) for rid, r in present if r["status"] != "skipped" and r["final_R"] is not None]
    text = "; ".join(f"{rid} {r['final_R']:.4f}" + (f" [{r['final_R_low']:.4f}, {r['final_R_high']:.4f}]"
                                                    if r["final_R_low"] is not None else "") for rid, r in ran)
    skipped = [rid for rid, r in present if r["status"] == "skipped"]
    if "ddpm-cifar10" in skipped or "ddpm-cifar10" not in by:
        why = by["ddpm-cifar10"]["note"] if "ddpm-cifar10" in by else "not asked for"
        verdict = f"cannot be tested here: the CIFAR10 row did not run ({why}). Final R: {text or 'no DDPM row ran'}."
    else:
        ordered = all(a[1]["final_R"] >= b[1]["final_R"] for a, b in zip(ran, ran[1:]))
        verdict = (f"final R {'falls' if ordered else 'does NOT fall'} with image complexity: {text}.")
    return {"rows": values, "verdict": verdict}


def claim_stability(found: dict[str, list[dict]], rows: list[dict], sweep: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": {}}
    sentences = []
    for r, claims in _measured(found, rows, "rd"):
        c = claims[0]
        out["rows"][r["id"]] = c
        lo, hi = c["final_R_bounds"]
        if not c["relative_residual_final"] < 0.5:
            sentences.append(f"{r['id']}: the state is far from stationary at the end (residual "
                             f"{_n(c['relative_residual_final'], '.2g')} x the reaction): the identity does not confine "
                             f"R there (final R {_n(c['final_R'])}).")
            continue
        sentences.append(f"{r['id']}: the relative residual ||dv/dt|| / ||reaction|| ends at "
                         f"{_n(c['relative_residual_final'], '.2g')}, which alone confines final R to [{_n(lo, '.4f')}, {_n(hi, '.4f')}] "
                         f"(measured {_n(c['final_R'], '.4f')}): R ~ 1 is what any near-stationary state must give.")
    if sweep is not None:
        st = sweep.get("fraction_final_R_within_1e-3_of_1_stationary")
        ns = sweep.get("fraction_final_R_within_1e-3_of_1_non_stationary")
        out["sweep"] = {"folder": sweep.get("_folder"), "stationary": st, "non_stationary": ns,
                        "stationary_points": sweep.get("stationary_points"),
                        "non_stationary_points": sweep.get("non_stationary_points")}
        if st is not None and ns is not None:
            sentences.append(f"In the (F, k) sweep, |final R - 1| < 1e-3 in {st:.1%} of the "
                             f"{sweep.get('stationary_points')} stationary patterns and in {ns:.1%} of the "
                             f"{sweep.get('non_stationary_points')} non-stationary points: "
                             + ("R ~ 1 does not single out stable patterns." if ns > 0 else
                                "here R ~ 1 occurs only with stationary patterns."))
    else:
        sentences.append("No (F, k) sweep named for this folder (run `rdlens sweep`, then `rdlens report FOLDER "
                         "--embed SWEEP_FOLDER` to add its stationary / non-stationary fractions).")
    out["verdict"] = " ".join(sentences)
    return out


def claim_training(folder: Path, rows: list[dict], seeds: list[int]) -> dict[str, Any]:
    """From the rows' R-along-training curves (``--track-every``), where there are any."""
    from rdlens.systems.ddpm import curve

    out: dict[str, Any] = {"rows": {}}
    sentences = []
    for r in rows:
        path = layout.seed_dir(folder, r["id"], seeds[0]) / "training_curve.csv"
        if r["system"] != "ddpm" or not path.exists():
            continue
        points = [p for p in curve.read(path) if p["step"] > 0]
        if len(points) < 2:
            continue
        a, b = points[0], points[-1]
        out["rows"][r["id"]] = {"first": a, "last": b}
        change = b["R"] / a["R"] - 1
        quality = (f"; the share of samples classified with confidence went {a['confident']:.0%} -> "
                   f"{b['confident']:.0%}" if _defined(a.get("confident")) and _defined(b.get("confident")) else "")
        sentences.append(f"{r['id']}: from training step {int(a['step'])} to {int(b['step'])}, R went "
                         f"{a['R']:.4f} -> {b['R']:.4f} ({change:+.1%}){quality}: "
                         + ("more training leaves R where it was, so R << 1 is not a sign of too little training."
                            if abs(change) < 0.05 else "R moves with training."))
    out["verdict"] = " ".join(sentences) or ("not measured: no DDPM row tracked R along training (profiles cpu and "
                                             "quick do; or --track-every)")
    return out


def find_sweep(folder: Path) -> dict[str, Any] | None:
    """The summary of the sweep the user named for this folder's page (``--embed``), verified;
    None if none was named."""
    from rdlens.core import layout

    for kind, where, summary in layout.read_embeds(folder):
        if kind == "sweep":
            return {**summary, "_folder": str(where)}
    return None


def build(folder: Path, info: dict[str, Any], records: list[dict]) -> tuple[str, dict[str, Any]]:
    """claims.md and claims.json from the rows' claims.json files; return (Markdown, data)."""
    rows, seeds = info["rows"], info["seeds"]
    found = {r["id"]: _seed_claims(folder, r["id"], seeds) for r in rows}  # each claims.json read once
    results = {1: claim_gates(found, rows), 2: claim_monotonic(found, rows, seeds),
               3: claim_steps(found, rows), 4: claim_ddim(found, rows), 5: claim_final_R(records),
               6: claim_stability(found, rows, find_sweep(folder)), 7: claim_training(folder, rows, seeds)}
    lines = ["# The paper's claims, tested", "",
             "Each verdict is generated from the numbers below it (rdlens reproduce --claims).", ""]
    for n, res in results.items():
        lines += [f"## {n}. {CLAIM_TITLES[n]}", "", f"**Verdict.** {res['verdict']}", ""]
        lines += _details(n, res)
    data: dict[str, Any] = {str(n): {"claim": CLAIM_TITLES[n], **res} for n, res in results.items()}
    own = own_claims(found, rows)
    if own:
        lines += ["## The systems' own claims", "",
                  "Claims a system states about its own rows, judged by that system from its measurements.", ""]
        for row, verdicts in own.items():
            lines += [f"- **{row}**, {claim}: {verdict}" for claim, verdict in verdicts.items()]
        lines.append("")
        data["own"] = own
    return "\n".join(lines) + "\n", data


def own_claims(found: dict[str, list[dict]], rows: list[dict]) -> dict[str, dict[str, str]]:
    """row -> {claim: verdict} for every row whose system judges claims of its own."""
    from rdlens.systems import style_of

    out = {}
    for r in rows:
        if found.get(r["id"]):
            verdicts = style_of(r["system"]).judge_claims(r["id"], found[r["id"]])
            if verdicts:
                out[r["id"]] = dict(verdicts)
    return out


def _details(n: int, res: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if n == 1 and res["rows"]:
        lines += ["| row | r(R, input gate) | r(R, 1 - forget gate) | untrained: input | untrained: erase |",
                  "|---|---|---|---|---|"]
        for rid, e in res["rows"].items():
            lines.append(f"| {rid} | {_f(e['trained']['input'])} | {_f(e['trained']['erase'])} | "
                         f"{_f(e['untrained']['input'])} | {_f(e['untrained']['erase'])} |")
    if n == 2 and res["rows"]:
        lines += ["| row | R(tau) of | falling stretches | largest fall | from -> to (tau) |", "|---|---|---|---|---|"]
        for rid, m in res["rows"].items():
            for who in ("trained", "oracle_gaussian", "schedule_only"):
                x = m[who]
                lines.append(f"| {rid} | {who.replace('_', ' ')} | {x['count']} | {x['largest_drop']:.1%} | "
                             f"{_n(x['largest_from_tau'], '.2f')} -> {_n(x['largest_to_tau'], '.2f')} |")
    if n == 3 and res["rows"]:
        lines += ["| row | T | beta_end | exact denoiser R | its final R | schedule-only R_score |",
                  "|---|---|---|---|---|---|"]
        for rid, c in res["rows"].items():
            for s in c["steps"]:
                lines.append(f"| {rid} | {s['T']} | {_n(s['beta_end'], '.4g')} | {_n(s['oracle_R'], '.4f')} | "
                             f"{_n(s['oracle_final_R'], '.4f')} | {_n(s['schedule_only_R_score'], '.4f')} |")
    if n == 4 and res["rows"]:
        lines += ["| row | sampler | R | final R | diversity | coverage |", "|---|---|---|---|---|---|"]
        for rid, sweep in res["rows"].items():
            for x in sweep:
                r = f"{x['R']:.4f}" if _defined(x["R"]) else "undefined (no noise)"
                fr = f"{x['final_R']:.4f}" if _defined(x["final_R"]) else "—"
                cov = f"{x['coverage']:.2f}" if "coverage" in x else "—"
                lines.append(f"| {rid} | {x['sampler']} | {r} | {fr} | {_n(x['diversity'], '.4g')} ({x['space']}) | {cov} |")
    if n == 5:
        lines += ["| row | final R | 95 % interval | seeds | status |", "|---|---|---|---|---|"]
        for rid, v in res["rows"].items():
            fr = "—" if v["final_R"] is None else f"{v['final_R']:.4f}"
            ci = "—" if v["low"] is None else f"[{v['low']:.4f}, {v['high']:.4f}]"
            lines.append(f"| {rid} | {fr} | {ci} | {v['n']} | {v['status']} |")
    if n == 7 and res["rows"]:
        lines += ["| row | from step | R | confident | to step | R | confident |", "|---|---|---|---|---|---|---|"]
        for rid, c in res["rows"].items():
            a, b = c["first"], c["last"]
            lines.append(f"| {rid} | {int(a['step'])} | {_n(a['R'])} | {_n(a.get('confident'), '.0%')} | "
                         f"{int(b['step'])} | {_n(b['R'])} | {_n(b.get('confident'), '.0%')} |")
    if n == 6 and res["rows"]:
        lines += ["| row | final R | relative residual at the end | bounds on final R |", "|---|---|---|---|"]
        for rid, c in res["rows"].items():
            lo, hi = c["final_R_bounds"]
            lines.append(f"| {rid} | {_n(c['final_R'])} | {_n(c['relative_residual_final'], '.3g')} | "
                         f"[{_n(lo)}, {_n(hi)}] |")
    return lines + ([""] if lines else [])
