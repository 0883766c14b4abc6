"""Small torch helpers shared by the learned systems: device choice and atomic checkpoints."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from rdlens.errors import ConfigError
from rdlens.rundir import DEVICES, atomic_write_bytes


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU is a clear error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for, but torch sees no CUDA GPU here (use --device cpu)")
    return torch.device(name)


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically; it must hold only tensors and plain Python values, so
    that :func:`load_checkpoint` can read it with ``weights_only=True`` (no code executed)."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``: tensors and plain values only); one
    that would run code when loaded, or a damaged one, is a ConfigError naming the file."""
    import pickle
    import warnings
    import zipfile

    try:
        with warnings.catch_warnings():  # a foreign pickle protocol warns before it is refused
            warnings.simplefilter("ignore")
            state = torch.load(Path(path), map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(f"{path} is not a weights-only checkpoint (loading it would run code), so rdlens "
                          "refuses it; delete it to start the run over") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        raise ConfigError(f"{path} is damaged ({type(exc).__name__}); delete it to start the run over") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} is not an rdlens checkpoint (it holds a {type(state).__name__})")
    return state


def save_training(path: str | os.PathLike, generator: torch.Generator, step: int, losses: list[float],
                  config: dict[str, Any], **stateful: Any) -> Path:
    """Checkpoint a training loop: each named object's ``state_dict()`` (model, EMA, optimiser),
    the data-order generator, torch's global generators (dropout draws from them), the step,
    the loss history and the configuration."""
    rng = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda_rng"] = torch.cuda.get_rng_state_all()
    return save_checkpoint(path, {
        **{name: obj.state_dict() for name, obj in stateful.items()}, "generator": generator.get_state(),
        **rng, "step": step, "losses": torch.tensor(losses, dtype=torch.float64), "config": config,
    })


def restore_training(path: str | os.PathLike, device: torch.device | str, generator: torch.Generator,
                     **stateful: Any) -> tuple[int, list[float]]:
    """Load a :func:`save_training` checkpoint into the named objects and the generator;
    return (step, losses) to continue from."""
    state = load_checkpoint(path, device)
    try:
        for name, obj in stateful.items():
            obj.load_state_dict(state[name])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"{path} does not fit this run's model ({type(exc).__name__}: {exc}); delete it to "
                          "start the run over") from None
    generator.set_state(state["generator"])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"]), state["losses"].tolist()
