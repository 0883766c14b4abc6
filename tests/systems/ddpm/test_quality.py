"""Sample quality: the classifier's measured accuracy, and real, noisy and shuffled images told
apart; the Fréchet distance against its closed form; the cache and its checksum."""

from __future__ import annotations

import contextlib
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rdlens import quality


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    return quality.judge("digits", None, tmp_path_factory.mktemp("classifiers"))


def test_the_classifier_is_accurate_on_the_held_out_split(judge):
    assert judge.accuracy >= 0.9  # measured on 360 real held-out digits (about 0.98)
    xte, yte = quality.labelled_data("digits", None, "test")
    assert quality.accuracy(judge.model, xte, yte) == pytest.approx(judge.accuracy)


def test_real_images_score_near_the_floor_and_noise_or_shuffled_pixels_far_worse(judge):
    n = 100
    real = judge.test_images[:n]
    rng = torch.Generator().manual_seed(0)
    noise = torch.randn(n, 1, 32, 32, generator=rng).clamp(-1, 1)
    shuffled = real.reshape(n, -1)[:, torch.randperm(1024, generator=rng)].reshape(n, 1, 32, 32)
    q_real, q_noise, q_shuf = (quality.measure(judge, x) for x in (real, noise, shuffled))
    assert q_real["frechet"] * 5 < q_shuf["frechet"] and q_real["frechet"] * 5 < q_noise["frechet"]
    assert q_real["confident"] >= 0.8 and q_real["coverage"] >= 0.9
    assert q_shuf["coverage"] < q_real["coverage"] and q_noise["coverage"] < q_real["coverage"]


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 2, 5), rng.uniform(0.1, 2, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert quality.frechet(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    assert quality.frechet(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(0.0, abs=1e-10)


def test_a_cached_classifier_is_reused_and_a_tampered_one_retrained(tmp_path, monkeypatch):
    shown = []

    @contextlib.contextmanager
    def bars(desc, total):
        counted = []
        yield SimpleNamespace(update=counted.append)
        shown.append((desc, total, sum(counted)))

    monkeypatch.setitem(quality.EPOCHS, "digits", 2)  # the cache is under test, not the accuracy
    first = quality.judge("digits", None, tmp_path, bars)
    batches = quality.EPOCHS["digits"] * math.ceil((1797 - 360) / 128)  # 360 digits held out for the test split
    assert shown == [("digits quality classifier (trained once, then cached)", batches, batches)]
    weights = next(tmp_path.glob("classifier-digits-*.pt"))
    calls = []
    real_train = quality.train_classifier
    monkeypatch.setattr(quality, "train_classifier", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    again = quality.judge("digits", None, tmp_path, bars)
    assert calls == [] and again.accuracy == first.accuracy and len(shown) == 1
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    retrained = quality.judge("digits", None, tmp_path)
    assert calls == [1]
    meta = json.loads(next(tmp_path.glob("classifier-digits-*.json")).read_text())
    assert meta["epochs"] == 2 and meta["accuracy"] == retrained.accuracy and len(meta["sha256"]) == 64
    assert meta["accuracy"] == quality.accuracy(retrained.model, *quality.labelled_data("digits", None, "test"))


def test_real_numbers_are_the_mean_and_spread_of_random_batches_not_the_first_images(judge):
    _, labels = quality.labelled_data("digits", None, "test")
    ordered = quality.Judge("digits", judge.model, judge.accuracy, judge.test_images[torch.argsort(labels, stable=True)])
    n = 32
    first = quality.measure(ordered, ordered.test_images[:n])  # every one a 0: one class only
    real = quality.report(ordered, ordered.test_images[:n])["real"]
    assert first["coverage"] < 0.2 and real["coverage"] >= 0.85
    assert real["batches"] == quality.REAL_BATCHES and real["images"] == n
    # an independent estimate of the same mean: many more random batches, drawn here
    rng = np.random.default_rng(123)
    many = [quality.measure(ordered, ordered.test_images[torch.from_numpy(rng.choice(len(labels), n, replace=False))])
            for _ in range(60)]
    for key in ("frechet", "confident", "coverage"):
        values = np.array([m[key] for m in many])
        assert abs(real[key] - values.mean()) <= 3 * values.std() / math.sqrt(quality.REAL_BATCHES) + 1e-12
        assert 0.4 * values.std() <= real["sd"][key] <= 2.5 * values.std() + 1e-12
    assert quality.real_text(real, "frechet", ".1f") == f"{real['frechet']:.1f} ± {real['sd']['frechet']:.1f}"
    assert quality.real_text({"frechet": 3.0}, "frechet", ".1f") == "3.0"  # a row written before the spread
