"""Sample quality beside R: does a DDPM draw what it learned?

rdlens trains a small convolutional classifier on each labelled data set (digits, MNIST,
Fashion-MNIST), reports its accuracy on the test split, and judges a batch of images by

- ``frechet``: the Fréchet distance between Gaussians fitted to the classifier's penultimate
  features of the batch and of the real test images (the construction of FID, but in this
  small network's feature space: *not* Inception-FID, and not comparable with published FIDs);
- ``confident``: the share of images the classifier labels with probability >= 0.9;
- ``coverage``: the entropy of the predicted labels divided by log(10) (1: all classes equally
  often; 0: one class only).

The same numbers for real held-out images (``real``) are what a perfect generator would score
with that many samples: their mean over :data:`REAL_BATCHES` random batches of as many images,
with the standard deviation between batches (``real["sd"]``). With 64 samples and 64 features
one batch is a noisy draw: measured on MNIST, random batches of 64 real test images score a
Fréchet distance of 53 +- 13 (Fashion-MNIST 25 +- 11). The batches are random, never the first n
test images: MNIST's first 5000 test images are the cleaner half (LeCun et al.); its first 64
score 72, its first 1000 score 14 where random batches of 1000 score 3.5 +- 0.5.
Classifiers are cached in the data folder with the SHA-256 of their weights, and retrained when
the file does not match.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from rdlens.core.rundir import atomic_write_bytes, write_json

LABELLED = ("digits", "mnist", "fashion-mnist")
"""data sets with class labels, hence a quality measure"""
VERSION = 1
"""bump when the network or its training changes: cached classifiers are then retrained"""
EPOCHS = {"digits": 30, "mnist": 5, "fashion-mnist": 5}
"""training epochs per data set (chosen by measurement: MNIST >= 98 %, Fashion-MNIST >= 88 %)"""
BATCH = 128
"""the classifier's training batch size"""
REAL_BATCHES = 10
"""random batches of real held-out images behind the real numbers (their mean and spread)"""


class Classifier(nn.Module):
    """Two convolutions and two dense layers on 1 x 32 x 32 images in [-1, 1]."""

    def __init__(self, features: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 8 * 8, features), nn.ReLU())
        self.head = nn.Linear(features, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def labelled_data(name: str, data_dir: str | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of the ``train`` or ``test`` split of a labelled data set."""
    from rdlens.systems.ddpm import images

    if name == "digits":
        from sklearn.datasets import load_digits

        x, y = images.load_digits(), torch.from_numpy(load_digits().target.astype(np.int64))
        order = torch.from_numpy(np.random.default_rng(0).permutation(len(x)))
        pick = order[:360] if split == "test" else order[360:]
        return x[pick], y[pick]
    if name not in LABELLED:
        raise ValueError(f"{name} has no labels; labelled data sets are {', '.join(LABELLED)}")
    x = images.load_mnist_like(name, data_dir, split)
    src = images.SOURCES[name]
    prefix = "train" if split == "train" else "t10k"
    path = images._find(Path(data_dir).expanduser(), src.folder, f"{prefix}-labels-idx1-ubyte.gz")
    if path is None:
        raise images._missing(name, Path(data_dir), Path(data_dir) / src.folder)
    return x, torch.from_numpy(images.read_idx(path).astype(np.int64))


@dataclass
class Judge:
    """A trained classifier and the feature statistics of the real test images."""

    name: str
    model: Classifier
    accuracy: float
    """accuracy on the test split"""
    test_images: torch.Tensor

    @cached_property
    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of the features of the real test images (computed once)."""
        return _stats(self.features_and_probs(self.test_images)[0])

    def features_and_probs(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        feats, probs = [], []
        with torch.no_grad():
            for batch in torch.split(x.float().cpu().clamp(-1, 1), 1024):
                f = self.model.features(batch)
                feats.append(f.double().numpy())
                probs.append(torch.softmax(self.model.head(f), dim=1).double().numpy())
        return np.concatenate(feats), np.concatenate(probs)


def train_classifier(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int = 0,
                     progress: Callable[[int], Any] | None = None) -> Classifier:
    """Adam, batch :data:`BATCH`, the given number of epochs; deterministic for a seed. ``progress(n)``
    counts batches."""
    from rdlens.core import threads

    torch.manual_seed(seed)
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed + 1)
    model.train()
    with threads.stage("classifier training", parallel=True):
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=gen).split(BATCH):
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if progress is not None:
                    progress(1)
    return model.eval()


def accuracy(model: Classifier, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        pred = torch.cat([model(b).argmax(1) for b in torch.split(x, 1024)])
    return float((pred == y).double().mean())


def judge(name: str, data_dir: str | None, cache_dir: str | Path,
          bars: Callable[[str, int], Any] | None = None) -> Judge:
    """The classifier of data set ``name``: loaded from ``cache_dir`` if its file matches the
    recorded SHA-256, else trained (1.5-4 min for MNIST on 2 cores) and cached; ``bars`` (a
    progress-bar factory, :data:`rdlens.systems.run.Bars`) shows that training."""
    from rdlens.core.progress import no_bars
    from rdlens.core.torchutil import load_checkpoint

    xte, yte = labelled_data(name, data_dir, "test")
    cache = Path(cache_dir).expanduser()
    from rdlens.core import threads

    # torch's numbers depend on its thread count: a classifier is cached per count it was trained with
    stem = f"classifier-{name}-v{VERSION}-t{threads.POLICY.torch_threads()}"
    weights, meta = cache / f"{stem}.pt", cache / f"{stem}.json"
    model = Classifier()
    try:
        recorded = json.loads(meta.read_text())
        if hashlib.sha256(weights.read_bytes()).hexdigest() != recorded["sha256"]:
            raise ValueError("checksum mismatch")
        model.load_state_dict(load_checkpoint(weights)["model"])
        acc = float(recorded["accuracy"])
    except Exception:  # absent, damaged or stale cache: train anew (never trust a bad file)
        xtr, ytr = labelled_data(name, data_dir, "train")
        batches = EPOCHS[name] * math.ceil(len(xtr) / BATCH)
        with (bars or no_bars)(f"{name} quality classifier (trained once, then cached)", batches) as bar:
            model = train_classifier(xtr, ytr, EPOCHS[name], progress=bar.update)
        acc = accuracy(model, xte, yte)
        buf = io.BytesIO()
        torch.save({"model": model.state_dict()}, buf)
        atomic_write_bytes(weights, buf.getvalue())
        write_json(meta, {"sha256": hashlib.sha256(buf.getvalue()).hexdigest(), "accuracy": acc,
                          "epochs": EPOCHS[name], "train_images": len(xtr), "version": VERSION})
    return Judge(name, model.eval(), acc, xte)


def frechet(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)) (Dowson & Landau 1982)."""
    import warnings

    from scipy import linalg

    with warnings.catch_warnings():  # few samples: a singular covariance is expected, sqrtm copes
        warnings.simplefilter("ignore")
        root = linalg.sqrtm(cov1 @ cov2)
    root = root.real if np.iscomplexobj(root) else root
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root))


def _stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return feats.mean(0), np.cov(feats, rowvar=False) if len(feats) > 1 else np.zeros((feats.shape[1],) * 2)


def measure(j: Judge, images: torch.Tensor) -> dict[str, Any]:
    """frechet, confident and coverage of ``images`` (N, 1, 32, 32) in [-1, 1] (see module doc)."""
    feats, probs = j.features_and_probs(images)
    pred = probs.argmax(1)
    counts = np.bincount(pred, minlength=10) / len(pred)
    nz = counts[counts > 0]
    return {"frechet": frechet(*_stats(feats), *j.reference),
            "confident": float((probs.max(1) >= 0.9).mean()),
            "coverage": max(0.0, float(-(nz * np.log(nz)).sum() / math.log(10)))}


def real_reference(j: Judge, n: int, batches: int = REAL_BATCHES, seed: int = 0) -> dict[str, Any]:
    """The quality numbers of ``batches`` random batches of ``n`` real held-out images (each drawn
    without replacement, seeded): their mean, and their standard deviation under ``"sd"``."""
    if n < 1 or batches < 1:
        raise ValueError(f"need n >= 1 and batches >= 1, got n={n}, batches={batches}")
    n = min(n, len(j.test_images))
    rng = np.random.default_rng(seed)
    runs = [measure(j, j.test_images[torch.from_numpy(rng.choice(len(j.test_images), n, replace=False))])
            for _ in range(batches)]
    keys = ("frechet", "confident", "coverage")
    return {**{k: float(np.mean([r[k] for r in runs])) for k in keys},
            "sd": {k: float(np.std([r[k] for r in runs], ddof=1)) if batches > 1 else 0.0 for k in keys},
            "batches": batches, "images": n}


def spread(value: float, sd: float | None, spec: str) -> str:
    """``value`` formatted by ``spec``, with `` ± sd`` when the spread is known (rows written
    before rdlens measured it have none)."""
    return format(value, spec) + ("" if sd is None else " ± " + format(sd, spec))


def real_sd(real: dict[str, Any], key: str) -> float | None:
    """The between-batch standard deviation of one real-image number; None for rows written
    before rdlens measured it."""
    return real.get("sd", {}).get(key)


def real_text(real: dict[str, Any], key: str, spec: str) -> str:
    """One real-image number with its between-batch spread, e.g. ``46.3 ± 6.5``."""
    return spread(real[key], real_sd(real, key), spec)


def report(j: Judge, samples: torch.Tensor) -> dict[str, Any]:
    """The samples' quality and, for scale, that of real held-out images in batches of as many
    (:func:`real_reference`)."""
    return {**measure(j, samples), "images": int(len(samples)), "real": real_reference(j, len(samples)),
            "classifier_accuracy": j.accuracy,
            "classifier": f"rdlens quality classifier v{VERSION} on {j.name}",
            "note": "Frechet distance in a small classifier's feature space, not Inception-FID"}


# What rdlens calls converged samples: classified with confidence nearly as often as real
# images are (the classifier is sure of 97 % of real MNIST digits but of 70 % of real
# Fashion-MNIST items, so an absolute bar would judge the data set, not the model), and all
# classes drawn about equally often.
CONVERGED_CONFIDENT = 0.8
"""share of the real images' confident share that the samples must reach"""
CONVERGED_COVERAGE = 0.9


def converged(quality: dict[str, Any] | None) -> bool | None:
    """Whether samples look learned: a confident share (p >= 0.9) at least 80 % of that of as
    many real images, and class coverage >= 0.9 (None where the data set has no classifier).
    Computed from the quality numbers, so a report re-judges old rows the same way."""
    if not quality:
        return None
    return (quality["confident"] >= CONVERGED_CONFIDENT * quality["real"]["confident"]
            and quality["coverage"] >= CONVERGED_COVERAGE)
