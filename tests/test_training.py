"""The shared training loop's early stop (the public code's LSTM rule), against a transcription
of its loop: stop once at least three losses are recorded and the last two differ by < tol."""

import torch
from torch import nn

from rdlens.training import fit, settled


def _public_stop(losses: list[float], tol: float) -> int:
    """How many epochs the authors' train_lstm runs on this loss sequence."""
    seen = []
    for loss in losses:
        seen.append(loss)
        if len(seen) > 2 and abs(seen[-2] - loss) < tol:
            break
    return len(seen)


def _scripted(values: list[float]):
    """A model whose loss at step s is values[s] (and still has a gradient)."""
    model = nn.Linear(1, 1)
    return model, (lambda step: values[step] + 0.0 * model.weight.sum())


def test_training_stops_where_the_public_codes_loop_stops(tmp_path):
    for values in ([3.0, 2.0, 1.5, 1.5000005, 1.4, 1.3], [1.0, 1.0, 1.0, 0.5, 0.4, 0.3], [5.0, 4.0, 3.0, 2.0, 1.0, 0.5]):
        model, loss = _scripted(values)
        done = fit(model, torch.optim.SGD(model.parameters(), lr=0.0), loss, steps=len(values),
                   generator=torch.Generator(), name="t", stop_tol=1e-6, parallel=False)
        assert done.steps_done == _public_stop(values, 1e-6)
        assert done.stopped_early == (done.steps_done < len(values))
    assert not settled([1.0, 1.0], 1e-6) and settled([2.0, 1.0, 1.0], 1e-6) and not settled([2.0, 1.0, 1.0], 0.0)


def test_a_settled_run_resumes_without_training_further(tmp_path):
    values = [3.0, 2.0, 2.0, 1.0, 0.5]
    model, loss = _scripted(values)
    ckpt = tmp_path / "checkpoint.pt"
    first = fit(model, torch.optim.SGD(model.parameters(), lr=0.0), loss, steps=5, generator=torch.Generator(),
                name="t", stop_tol=1e-6, checkpoint=ckpt, checkpoint_every=100, parallel=False)
    assert first.steps_done == 3 and ckpt.exists()
    again = fit(model, torch.optim.SGD(model.parameters(), lr=0.0), loss, steps=5, generator=torch.Generator(),
                name="t", stop_tol=1e-6, checkpoint=ckpt, checkpoint_every=100, resume=True, parallel=False)
    assert again.steps_done == 3 and again.losses == first.losses
