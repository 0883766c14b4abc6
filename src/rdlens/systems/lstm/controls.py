"""Controls of an LSTM row: what would R be without learning?

The same architecture untrained (PyTorch's init; the paper's N(0, 1) init); the trained model
fed white noise; and two identities of the cell update C_t - C_{t-1} = r_t - d_t
(r = i*g, d = (1-f)*C_{t-1}):
  telescoping residual  ||C_T - C_0|| / sum_t ||r_t||      (mean over sequences)
  bound B = mean_t ||C_t - C_{t-1}|| / M_react, and since | ||r|| - ||d|| | <= ||r - d||,
  |M_react - M_diff| <= B M_react, so R lies in [1 / (1 + B), 1 / (1 - B)] whatever the weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rdlens.core.balance import BalanceTrace, identity_range, trace_numbers

ControlResult = dict[str, Any]
"""a control's numbers, by name"""


def lstm_identities(record: Any) -> dict[str, float]:
    """The telescoping residual and the bound B of a gate record (see module doc)."""
    r = record.reaction.double()
    d = record.diffusion.double()
    r_norm = torch.linalg.vector_norm(r, dim=-1)  # (time, batch)
    d_norm = torch.linalg.vector_norm(d, dim=-1)
    delta = torch.linalg.vector_norm(record.c.double() - record.c_prev.double(), dim=-1)
    net = torch.linalg.vector_norm(record.c[-1].double() - record.c0.double(), dim=-1)  # (batch,)
    telescoping = float((net / r_norm.sum(0)).mean())
    m_react = float(r_norm.mean())
    bound = float(delta.mean()) / m_react
    return {"telescoping_residual": telescoping, **identity_range(bound, m_react / float(d_norm.mean()))}


def lstm_controls(cfg: Any, model: Any, data: Any, evaluation: Any, device: Any = "cpu"
                  ) -> tuple[ControlResult, dict[str, BalanceTrace]]:
    """Untrained models (both inits), the trained model on white noise, and the identities."""
    from dataclasses import replace

    from rdlens.systems.lstm import model as lstm

    traces: dict[str, BalanceTrace] = {}
    results: ControlResult = {}
    for name, init in (("untrained_pytorch", "pytorch"), ("untrained_normal", "normal")):
        untrained = lstm.build_model(replace(cfg, init=init), device).eval()
        traces[name] = lstm.evaluate(cfg, untrained, data, device).trace
    rng = np.random.default_rng(cfg.seed + 7)
    noise = replace(data, test=rng.standard_normal(data.test.shape))
    traces["white_noise"] = lstm.evaluate(cfg, model, noise, device).trace
    for name, tr in traces.items():
        results[name] = trace_numbers(tr)
    results["identities"] = lstm_identities(evaluation.record)
    return results, traces
