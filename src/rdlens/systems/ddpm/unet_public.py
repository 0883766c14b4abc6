"""The authors' U-Net (jinchengluo/lstm-ddpm, ``src/ddpm.py``), rebuilt from its layer list so
that the ``authors`` profile trains the network the paper's numbers came from.

Its structure, quirks included (each differs from :class:`rdlens.systems.ddpm.unet.UNet`):

- a list of layers of widths ``C_i``; the first half go down (two residual blocks, then a
  stride-2 convolution to ``2 C_i``), the second half go up (two residual blocks, then a
  transposed convolution to ``C_i / 2``, concatenated with the matching down layer's output);
  no middle block;
- a fixed sinusoidal time embedding (interleaved sin/cos, width ``max C_i``) whose first
  ``C`` entries are *added to the input* of every residual block; no learned time MLP;
- residual blocks GroupNorm - ReLU - conv - dropout - GroupNorm - ReLU - conv, plus the input;
- attention (``heads`` heads, two linear maps) *replaces* its input: no norm, no residual, and
  its dropout is applied in evaluation too (``dropout_p`` is passed to the attention kernel
  unconditionally), so sampling draws from torch's global generator;
- output: ReLU(conv 3x3 to half the width) then a 1x1 convolution.

For the authors' list (widths 32, 64, 128, 256, 256, 192; attention in layers 1 and 4; 8
groups) and one channel it has 8,916,321 parameters, as theirs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rdlens.core.errors import ConfigError

AUTHORS_CHANNELS = (32, 64, 128, 256, 256, 192)
AUTHORS_ATTENTION = (1, 4)


def check_layers(channels: tuple[int, ...], attention: tuple[int, ...], groups: int, heads: int,
                 image_size: int) -> None:
    """Refuse a layer list whose down and up halves do not chain (the authors' code would fail
    with a shape error deep inside its forward pass)."""
    n = len(channels)
    if n < 2 or n % 2:
        raise ConfigError(f"the public-code U-Net needs an even number (>= 2) of layer widths, got {channels}")
    half = n // 2
    c = channels[0]
    skips = []
    for i in range(half):
        if channels[i] != c:
            raise ConfigError(f"public-code U-Net: down layer {i} receives {c} channels but its width is {channels[i]}")
        skips.append(c)
        c = 2 * c
    for i in range(half, n):
        if channels[i] != c:
            raise ConfigError(f"public-code U-Net: up layer {i} receives {c} channels but its width is {channels[i]}")
        c = channels[i] // 2 + skips.pop()
    bad = [w for w in channels if w % groups or w % heads]
    if bad:
        raise ConfigError(f"public-code U-Net: widths {bad} are not divisible by groups = {groups} and heads = {heads}")
    if any(not 0 <= a < n for a in attention):
        raise ConfigError(f"attention layers must be in [0, {n - 1}], got {attention}")
    if image_size % 2**half:
        raise ConfigError(f"image_size {image_size} is not divisible by 2^{half} ({half} down layers)")


def sinusoidal(s: torch.Tensor, dim: int) -> torch.Tensor:
    """The authors' embedding of step s: entry 2j = sin(s w_j), 2j + 1 = cos(s w_j), w_j =
    10000^(-2j / dim)."""
    w = torch.exp(torch.arange(0, dim, 2, device=s.device, dtype=torch.float32) * -(math.log(10000.0) / dim))
    args = s.float()[:, None] * w[None]
    out = torch.zeros(s.shape[0], dim, device=s.device)
    out[:, 0::2] = torch.sin(args)
    out[:, 1::2] = torch.cos(args)[:, : dim // 2]
    return out


class _Res(nn.Module):
    def __init__(self, c: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.gnorm1, self.gnorm2 = nn.GroupNorm(groups, c), nn.GroupNorm(groups, c)
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = x + emb[:, : x.shape[1], None, None]
        r = self.dropout(self.conv1(F.relu(self.gnorm1(x))))
        return self.conv2(F.relu(self.gnorm2(r))) + x


class _Attention(nn.Module):
    def __init__(self, c: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.proj1, self.proj2 = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.heads, self.p = heads, dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        t = self.proj1(x.flatten(2).transpose(1, 2))                         # (b, L, 3C): (C', H, K) order
        t = t.reshape(b, hh * ww, c // self.heads, self.heads, 3).permute(4, 0, 3, 1, 2)  # (K, b, H, L, C')
        out = F.scaled_dot_product_attention(t[0], t[1], t[2], dropout_p=self.p)  # dropout in eval too
        out = out.permute(0, 2, 3, 1).reshape(b, hh * ww, c)                  # (b, L, C' H)
        return self.proj2(out).transpose(1, 2).reshape(b, c, hh, ww)


class _Layer(nn.Module):
    def __init__(self, c: int, up: bool, attention: bool, groups: int, dropout: float, heads: int) -> None:
        super().__init__()
        self.res1, self.res2 = _Res(c, groups, dropout), _Res(c, groups, dropout)
        self.attention = _Attention(c, heads, dropout) if attention else None
        self.conv = (nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1) if up
                     else nn.Conv2d(c, 2 * c, 3, stride=2, padding=1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.res1(x, emb)
        if self.attention is not None:
            x = self.attention(x)
        x = self.res2(x, emb)
        return self.conv(x), x


class PublicCodeUNet(nn.Module):
    """eps_theta(x_t, s) with the authors' architecture (see the module doc)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...] = AUTHORS_CHANNELS,
                 attention: tuple[int, ...] = AUTHORS_ATTENTION, groups: int = 8, dropout: float = 0.1,
                 heads: int = 8, image_size: int = 32) -> None:
        super().__init__()
        check_layers(tuple(channels), tuple(attention), groups, heads, image_size)
        n = len(channels)
        self.half = n // 2
        self.emb_dim = max(channels)
        self.shallow_conv = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.layers = nn.ModuleList(_Layer(c, i >= self.half, i in attention, groups, dropout, heads)
                                    for i, c in enumerate(channels))
        width = channels[-1] // 2 + channels[0]
        self.late_conv = nn.Conv2d(width, width // 2, 3, padding=1)
        self.output_conv = nn.Conv2d(width // 2, in_channels, 1)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        emb = sinusoidal(s, self.emb_dim)
        x = self.shallow_conv(x)
        skips = []
        for layer in self.layers[: self.half]:
            x, r = layer(x, emb)
            skips.append(r)
        for layer in self.layers[self.half:]:
            x = torch.cat((layer(x, emb)[0], skips.pop()), dim=1)
        return self.output_conv(F.relu(self.late_conv(x)))
