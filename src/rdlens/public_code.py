"""Where rdlens's protocol differs from the authors' public code (jinchengluo/lstm-ddpm), as
data: each difference names the setting that switches it, so that a report can say which side
each of its rows took (``differences.md``), and the ``authors`` profile can take the public
code's side everywhere (``profiles/authors.toml``).

The metric code of the two agrees when both get the same inputs (Gray-Scott per-step norms to
3e-11, LSTM R to 2e-6 on the authors' weights; DDPM per-step norms to 2e-7 over the 999 noisy
steps with the public code's float32 schedule, ``schedule_dtype = float32``, and to 1.4e-4 with
rdlens's float64 one: issues 15 and 27's side-by-side runs). What differs is the protocol
around it, listed here. The "effect" column quotes the size measured side by side or by
``benchmarks/measure_differences.py`` (each switch flipped alone from the ``authors`` profile);
it is not recomputed by a report (run both profiles to measure it on your rows). A difference
that no setting switches (``path`` empty) says what every row did in ``fixed``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Difference:
    area: str
    public_code: str
    rdlens: str
    system: str
    path: tuple[str, ...]
    """where the switch sits in the system's config.json"""
    public_value: Any
    """its value on the public code's side"""
    rdlens_value: Any
    """its value on rdlens's side (what a config.json written before the switch existed means)"""
    effect: str
    row: str | None = None
    """the one Table 1 row it concerns (None: every row of the system)"""
    fixed: str = ""
    """for a difference no setting switches (empty ``path``): what every row did"""


DIFFERENCES: tuple[Difference, ...] = (
    Difference("RD grid", "N = 200 gives 201 interior nodes; the periodic wrap makes 201 cells, dx = 0.01 (L = 2.01)",
               "200 cells, L = 2", "rd", ("model", "size"), 201, 200, "R within 1e-5"),
    Difference("RD stripe F", "0.0545 (linspace(0.029, 0.0545, 3))", "0.055 (the paper's text)", "rd", ("model", "F"),
               0.0545, 0.055, "R 1.009317 vs 1.009240", row="rd-stripe"),
    Difference("RD start square", "cells 89-108 of 201 (U[mid-r:mid+r] of the ghost-padded array, mid = 100): one "
               "cell before the centre", "cells 90-109, centred", "rd", ("square_shift",), 1, 0,
               "R -4.7e-4 (spots; -5e-5 with rdlens's all-cell norms, which a shift cannot move the pattern "
               "out of), -1.3e-4 (stripe; the same with either norm) against a seed s.d. of 5-6e-5"),
    Difference("RD early stop", "stops after its step 100 once the mean absolute change of v in a step < 1e-6",
               "runs every step", "rd", ("stop_tol",), 1e-6, 0.0,
               "none: neither row gets below 1e-6 in 5000 steps"),
    Difference("RD start noise", "np.random.randn, unseeded: every run starts differently",
               "seeded by --seed", "rd", (), None, None,
               "s.d. of R over 5 seeds 5.9e-5 (spots), 5.1e-5 (stripe)", fixed="seeded (no setting)"),
    Difference("RD states and diffusion norm", "5001 states (the final one included); diffusion from the Laplacian "
               "of the ghost-free interior: inner 199^2 cells; reaction over all cells",
               "the 5000 states steps start from; both norms over all cells", "rd", ("norms",), "public-code",
               "rdlens", "spots: R +4.6e-4, final R 1.0033 -> 1.0080"),
    Difference("LSTM warm-up", "warms up on ONE value (seed_data.size(1) = 1)", "the whole held-out sequence",
               "lstm", ("warmup",), "first-value", "sequence", "R changes by 0.004-0.074 on the same weights"),
    Difference("LSTM first step", "C_prev = 0: diffusion 0 at the first recorded step", "the warm-up's state",
               "lstm", ("first_cprev",), "zero", "state", "R -0.03 to -0.24 %"),
    Difference("sine and Lorenz data", "sin(freq t + phase), not standardised; Lorenz by Euler dt 0.02 from N(0, 1), "
               "no transient, z-scored on all data", "sin(2 pi f t + phase) standardised; RK4, transient dropped, "
               "train-split statistics", "lstm", ("data", "form"), "public-code", "rdlens",
               "paper preset R 1.00-1.15 vs 0.985-0.991 (sine)"),
    Difference("LSTM data split", "trains on all 1000 sequences and measures on a training sequence",
               "trains on 800, measures on held-out ones", "lstm", ("split",), "none", "held-out",
               "R +0.008 (sine), -0.006 (Lorenz), -0.003 (Van der Pol) against a seed s.d. of 0.024-0.064"),
    Difference("LSTM early stop", "stops once two consecutive losses differ by < 1e-6", "trains every epoch",
               "lstm", ("stop_tol",), 1e-6, 0.0, "none: no row's losses settle within 200 epochs"),
    Difference("sequence length", "100 (the newest readable notebook)", "200", "lstm", ("data", "length"), 100, 200,
               "not isolated"),
    Difference("LSTM averaging", "the table prints the last of 3 single sequences", "mean over the held-out sequences",
               "lstm", ("eval_sequences",), 1, 0, "not isolated"),
    Difference("LSTM biases", "one per gate", "b_ih + b_hh (two trainable copies)", "lstm", ("bias",), "single",
               "double", "not isolated"),
    Difference("DDPM U-Net", "8,916,321 parameters: 3 down + 3 up layers (32/64/128, 256/256/192), attention at 16x16 "
               "and 8x8 without norm or residual, dropout active in eval, no middle block, fixed time embedding "
               "added in every block, ReLU", "rdlens's U-Net (GroupNorm-SiLU ResBlocks, learned time MLP, middle "
               "block)", "ddpm", ("unet", "network"), "public-code", "rdlens", "not trained here (needs a GPU)"),
    Difference("DDPM data", "[0, 1], zero padding; CIFAR10 padded to 36x36 (which its U-Net cannot take: 9 -> 5 -> 10 "
               "does not meet the 9x9 skip)", "[-1, 1], 32x32", "ddpm", ("pixels",), "unit", "signed",
               "not trained here"),
    Difference("DDPM optimiser", "Adam lr 2e-5, no gradient clipping", "AdamW, clip 1.0", "ddpm", ("optimizer",),
               "adam", "adamw", "not trained here"),
    Difference("DDPM batches", "each epoch a fresh permutation cut into full batches (DataLoader shuffle, "
               "drop_last)", "each step draws its batch with replacement", "ddpm", ("batches",), "epochs", "random",
               "R +0.0001 and -0.0002 on two seeds (small U-Net, digits, about 5 epochs) against 0.002 between the "
               "seeds"),
    Difference("DDPM schedule precision", "beta, alpha-bar in float32 (torch.linspace, cumprod)", "float64",
               "ddpm", ("schedule", "dtype"), "float32", "float64", "R 2e-8; reaction norms up to 6e-5 of the largest (same weights and noise; the public "
               "code's side agrees with it to 2e-7)"),
    Difference("DDPM training length", "the readable notebooks train on 128 images and sample from a checkpoint "
               "trained elsewhere (not public)", "2340 steps: 5 epochs of 468 full batches of 128 of the 60,000 "
               "images, as the paper's text and train_ddpm's defaults suggest", "ddpm", (), None, None,
               "unknown: the checkpoint the paper sampled from is not public", fixed="an assumption (no setting)"),
    Difference("DDPM EMA", "0.9999 with no warm-up (about 0.79 of the random initial weights remain after 2340 "
               "steps)", "warm-up (1 + step) / (10 + step)", "ddpm", ("ema_warmup",), False, True, "not trained here"),
    Difference("DDPM last step", "a 1000th entry from stale t = 1 values, with the norm of a noise never added, "
               "averaged in", "excluded (it adds no noise)", "ddpm", ("last_step",), "public-code", "exclude",
               "R +0.13 %, a different final R"),
)


def _value(config: dict[str, Any], d: Difference) -> Any:
    node: Any = config
    for key in d.path:
        if not isinstance(node, dict) or key not in node:
            return d.rdlens_value  # written before the switch existed: rdlens's side
        node = node[key]
    return node


def side(values: list[Any], d: Difference) -> str:
    """'public code', 'rdlens', 'other (...)' or 'mixed' for the values the rows used."""
    labels = {"public code" if v == d.public_value else "rdlens" if v == d.rdlens_value else f"other ({v})"
              for v in values}
    return labels.pop() if len(labels) == 1 else "mixed"


def markdown(configs: list[tuple[str, dict[str, Any]]]) -> str:
    """The differences table with the side this run's rows took; ``configs`` holds (row id,
    config.json contents) of the rows that ran."""
    lines = ["## Differences from the public code", "",
             "The authors' public code (jinchengluo/lstm-ddpm) and rdlens compute the same norms from the same "
             "inputs; these are the protocol differences around them. 'This run' says which side the rows took "
             "(`--profile authors` takes the public code's everywhere). Effects as measured side by side with the "
             "public code (rdlens issues 15 and 27) or by benchmarks/measure_differences.py (each switch flipped "
             "alone from the authors profile, same seed), not recomputed here.", "",
             "| area | public code | rdlens | setting | this run | effect |", "|---|---|---|---|---|---|"]
    for d in DIFFERENCES:
        rows = [c for row, c in configs if c.get("system") == d.system and d.row in (None, row)]
        if not d.path:
            cells = [d.area, d.public_code, d.rdlens, "none", d.fixed if rows else "no rows", d.effect]
        else:
            taken = side([_value(c, d) for c in rows], d) if rows else "no rows"
            setting = f"`{d.system}: {'.'.join(d.path)} = {json.dumps(d.public_value)}`"
            cells = [d.area, d.public_code, d.rdlens, setting, taken, d.effect]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def concerns(configs: list[tuple[str, dict[str, Any]]]) -> bool:
    """Whether any of these rows is of a system the public code has (RD, LSTM, DDPM)."""
    return any(c.get("system") in {d.system for d in DIFFERENCES} for _, c in configs)


def folder_configs(folder: str | Path, info: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(row id, config.json) of every row that ran (first seed)."""
    from rdlens.core import layout

    out = []
    for r in info["rows"]:
        path = layout.seed_dir(Path(folder), r["id"], info["seeds"][0]) / "config.json"
        if r["status"] != "skipped" and path.exists():
            out.append((r["id"], json.loads(path.read_text())))
    return out
