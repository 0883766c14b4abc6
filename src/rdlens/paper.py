"""The paper's published numbers (Lo, Nishimura & Ikeda, Table 1), printed beside ours.

These are references to compare with, never targets: a difference is a finding to report.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    system: str
    setting: str
    M_react: float
    M_diff: float
    R: float


TABLE1: dict[str, PaperRow] = {
    "rd-spot": PaperRow("RD", "spot regime", 0.3589, 0.3551, 1.0107),
    "rd-stripe": PaperRow("RD", "stripe regime", 0.3742, 0.3707, 1.0093),
    "lstm-sine": PaperRow("LSTM", "sine waves", 1.6732, 1.6204, 1.0325),
    "lstm-lorenz": PaperRow("LSTM", "Lorenz", 1.5836, 1.5254, 1.0381),
    "lstm-vanderpol": PaperRow("LSTM", "Van der Pol", 1.8933, 1.9791, 0.9566),
    "ddpm-mnist": PaperRow("DDPM", "MNIST", 0.2143, 3.0274, 0.0708),
    "ddpm-fashion-mnist": PaperRow("DDPM", "FashionMNIST", 0.2152, 3.0277, 0.0711),
    "ddpm-cifar10": PaperRow("DDPM", "CIFAR10", 0.3688, 5.2508, 0.0702),
}
"""Row id -> the paper's M_react, M_diff and R (Table 1)."""
