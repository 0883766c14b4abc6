"""The convolutional LSTM: its balance against an independent NumPy replay of its weights."""

import numpy as np
import pytest
import torch

from rdlens.convlstm import ConvLSTM, step_loss
from rdlens.errors import ConfigError


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _replay(model: ConvLSTM, start: np.ndarray, cond: np.ndarray, steps: int):
    """The gate equations written out in float64 NumPy: periodic padding by np.pad(wrap) and the
    convolution as a sum over kernel offsets, independent of torch's conv2d."""
    w = model.gates.weight.detach().double().numpy()
    b = model.gates.bias.detach().double().numpy()
    v = model.readout.weight.detach().double().numpy()[:, :, 0, 0]
    vb = model.readout.bias.detach().double().numpy()
    r = model.kernel // 2
    x = start.astype(np.float64)
    n, _, hh, ww = x.shape
    h = np.zeros((n, model.hidden, hh, ww))
    c = np.zeros_like(h)
    planes = np.broadcast_to(cond[:, :, None, None], (n, cond.shape[1], hh, ww))
    reaction, diffusion, frames = [], [], [x]
    for _ in range(steps):
        z = np.pad(np.concatenate([x, planes, h], axis=1), ((0, 0), (0, 0), (r, r), (r, r)), mode="wrap")
        a = np.zeros((n, 4 * model.hidden, hh, ww)) + b[None, :, None, None]
        for dy in range(model.kernel):
            for dx in range(model.kernel):
                a += np.einsum("oi,nihw->nohw", w[:, :, dy, dx], z[:, :, dy:dy + hh, dx:dx + ww])
        a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)
        i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
        reaction.append(np.linalg.norm((i * g).reshape(n, -1), axis=1))
        diffusion.append(np.linalg.norm(((1 - f) * c).reshape(n, -1), axis=1))
        c = f * c + i * g
        h = o * np.tanh(c)
        x = x + np.einsum("oi,nihw->nohw", v, h) + vb[None, :, None, None]
        frames.append(x)
    return np.array(reaction), np.array(diffusion), np.stack(frames, axis=1)


def test_rollout_balance_and_frames_match_an_independent_numpy_replay():
    torch.manual_seed(3)
    model = ConvLSTM(2, hidden=4, kernel=3, conditions=2).double()
    torch.nn.init.normal_(model.readout.weight, std=0.1)  # a non-trivial read-out (zero at initialisation)
    start = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    cond = torch.randn(3, 2, dtype=torch.float64)
    frames, record = model.rollout(start, 5, cond)
    reaction, diffusion, expected = _replay(model, start.numpy(), cond.numpy(), 5)
    np.testing.assert_allclose(record.reaction, reaction, rtol=1e-10)
    np.testing.assert_allclose(record.diffusion, diffusion, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(frames.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert np.all(record.diffusion[0] == 0) and np.all(record.diffusion[1:] > 0)  # C_0 = 0: nothing to erase at first
    trace = record.trace()
    assert trace.M_react == pytest.approx(reaction.mean()) and trace.M_diff == pytest.approx(diffusion.mean())


def test_periodic_padding_makes_the_model_commute_with_shifts_of_the_torus():
    torch.manual_seed(0)
    model = ConvLSTM(2, hidden=4, kernel=3).double()
    torch.nn.init.normal_(model.readout.weight, std=0.1)
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    a, _ = model.rollout(x, 3)
    b, _ = model.rollout(torch.roll(x, (3, 5), dims=(2, 3)), 3)
    torch.testing.assert_close(torch.roll(a, (3, 5), dims=(3, 4)), b)


def test_teacher_forced_prediction_of_an_untrained_model_is_persistence():
    model = ConvLSTM(2, hidden=4)
    frames = torch.randn(2, 4, 2, 8, 8)
    torch.testing.assert_close(model(frames[:, :-1]), frames[:, :-1])
    assert float(step_loss(model, frames).detach()) == pytest.approx(float(((frames[:, 1:] - frames[:, :-1]) ** 2).mean()))


@pytest.mark.parametrize("kwargs, fragment", [({"hidden": 0}, "hidden must be an integer >= 1"),
                                              ({"kernel": 4}, "kernel must be odd"),
                                              ({"channels": 2.5}, "channels must be an integer")])
def test_bad_shapes_are_refused_with_the_value(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        ConvLSTM(**{"channels": 2, **kwargs})


def test_missing_conditions_are_refused():
    model = ConvLSTM(2, hidden=4, conditions=2)
    with pytest.raises(ConfigError, match=r"conditions of shape \(1, 2\)"):
        model.rollout(torch.zeros(1, 2, 8, 8), 2)


def test_free_running_training_prediction_is_the_rollout():
    """The free-running loss trains exactly what a rollout does: its predictions from frame 0 are
    the rollout's frames, whatever the later true frames are."""
    torch.manual_seed(1)
    model = ConvLSTM(2, hidden=4, conditions=1).double()
    torch.nn.init.normal_(model.readout.weight, std=0.1)
    frames = torch.randn(2, 5, 2, 8, 8, dtype=torch.float64)
    cond = torch.randn(2, 1, dtype=torch.float64)
    free = model(frames, cond, free=True)
    rolled, _ = model.rollout(frames[:, 0], 5, cond)
    torch.testing.assert_close(free.detach(), rolled[:, 1:])
    assert not torch.allclose(model(frames, cond).detach(), free.detach())  # teacher forcing differs
