"""Small torch helpers shared by the learned systems: device choice and atomic checkpoints."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from rdlens.core.errors import ConfigError
from rdlens.core.rundir import DEVICES, atomic_write_bytes


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU is a clear error."""
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for, but torch sees no CUDA GPU here (use --device cpu)")
    return torch.device(name)


def forward_flops(module: torch.nn.Module, *inputs: Any) -> float:
    """Floating-point operations of one forward pass of ``module`` on ``inputs``, as torch's
    ``FlopCounterMode`` counts them (matrix products and convolutions: 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return float(counter.get_total_flops())


DIGEST_SUFFIX = ".sha256"
"""beside each checkpoint: the SHA-256 of the checkpoint written last and of the one before it"""


def _digest_file(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically, and its checksum beside it (so that a damaged file, a
    flipped bit included, is found before it is used); it must hold only tensors and plain
    Python values, so that :func:`load_checkpoint` can read it with ``weights_only=True``."""
    import hashlib

    path = Path(path)
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    # the new checksum goes first, beside the previous one: a crash between the two writes
    # leaves the old checkpoint, which still verifies
    known = _known_digests(path)[:1]
    atomic_write_bytes(_digest_file(path), ("\n".join([hashlib.sha256(data).hexdigest(), *known]) + "\n").encode())
    return atomic_write_bytes(path, data)


def _known_digests(path: Path) -> list[str]:
    try:
        return _digest_file(path).read_text().split()
    except OSError:
        return []


def verify_checkpoint(path: str | os.PathLike) -> None:
    """A ConfigError if ``path`` differs from every checkpoint rdlens wrote there (damaged or
    edited); a checkpoint written before rdlens kept checksums passes."""
    from rdlens.core.study import sha256

    path = Path(path)
    known = _known_digests(path)
    if known and sha256(path) not in known:
        raise ConfigError(f"{path} differs from the checkpoint rdlens wrote (damaged or edited: its SHA-256 is not "
                          f"the one in {_digest_file(path).name}); delete it to start the run over")


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``: tensors and plain values only) after
    checking its checksum; one that would run code when loaded, or a damaged one, is a
    ConfigError naming the file."""
    import pickle
    import warnings

    verify_checkpoint(path)
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol warns before it is refused
            warnings.simplefilter("ignore")
            state = torch.load(Path(path), map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(f"{path} is not a weights-only checkpoint (loading it would run code), so rdlens "
                          "refuses it; delete it to start the run over") from None
    except Exception as exc:  # noqa: BLE001 - whatever the unpickler trips on in a damaged file
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
                     steps: int | None = None, **stateful: Any) -> tuple[int, list[float]]:
    """Load a :func:`save_training` checkpoint into the named objects and the generator;
    return (step, losses) to continue from. The checkpoint is checked as a whole before
    anything is loaded: its checksum, every key and type, a step in [0, ``steps``], one finite
    loss per step; then every state must fit its object and the weights be finite."""
    state = load_checkpoint(path, device)

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{path} is not a usable checkpoint of this run: {what}; delete it to start the run over")

    missing = [k for k in (*stateful, "generator", "step", "losses") if k not in state]
    if missing:
        raise bad(f"it lacks {', '.join(missing)}")
    step, losses = state["step"], state["losses"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0 or (steps is not None and step > steps):
        raise bad(f"its step {step!r} is not an integer in [0, {steps if steps is not None else 'the run length'}]")
    if not isinstance(losses, torch.Tensor) or losses.ndim != 1 or len(losses) != step:
        raise bad(f"it must hold one loss per step ({step}), got {type(losses).__name__} "
                  f"{tuple(losses.shape) if isinstance(losses, torch.Tensor) else ''}".rstrip())
    if not bool(torch.isfinite(losses).all()):
        raise bad("its loss history holds a value that is not finite (a run that diverged does not resume)")
    for key in ("generator", "torch_rng"):
        if key in state and not (isinstance(state[key], torch.Tensor) and state[key].dtype == torch.uint8):
            raise bad(f"its {key} is not a random-generator state")
    for name in stateful:
        if not isinstance(state[name], dict):
            raise bad(f"its {name} is a {type(state[name]).__name__}, not a state dict")
    try:
        generator.set_state(state["generator"].cpu())
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"].cpu())
        for name, obj in stateful.items():
            obj.load_state_dict(state[name])
    except (KeyError, RuntimeError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ConfigError(f"{path} does not fit this run ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                          "delete it to start the run over") from None
    for name, obj in stateful.items():
        if isinstance(obj, torch.nn.Module) and not all(bool(torch.isfinite(p).all()) for p in obj.parameters()):
            raise bad(f"its {name} weights are not finite")
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(step), losses.tolist()
