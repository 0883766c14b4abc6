"""The epsilon network: a U-Net with residual blocks (GroupNorm, SiLU), a sinusoidal time
embedding, skip connections and optional self-attention at low resolution (Ho et al. 2020).

The network only maps (x_t, s) -> eps; the schedule and the sampler live in ddpm.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rdlens.core.errors import ConfigError
from rdlens.core.options import setting, validate


NETWORKS = ("rdlens", "public-code")
PADDINGS = ("zeros", "circular")


@dataclass(frozen=True)
class UNetConfig:
    """Widths and structure. ``channels[k]`` is the width at resolution image_size / 2^k."""

    in_channels: int = setting(1, low=1, high=64)
    channels: tuple[int, ...] = (32, 64, 64)
    """width of each resolution level (the first is the full image)"""
    res_blocks: int = setting(1, low=1)
    """residual blocks per level on the way down (one more on the way up)"""
    attention: tuple[int, ...] = (2,)
    """levels (indices into channels) with self-attention after each residual block"""
    groups: int = 8
    """GroupNorm groups; every width must be divisible by it"""
    dropout: float = setting(0.0, low=0, high=1, open=(False, True))
    image_size: int = setting(32, low=1, high=8192)
    network: str = setting("rdlens", choices=NETWORKS)
    """rdlens (this module's U-Net: channels per resolution level) or public-code (the authors'
    network, rdlens.systems.ddpm.unet_public: channels per layer, attention = layer indices, res_blocks unused)"""
    heads: int = 8
    """attention heads of the public-code network"""
    padding: str = setting("zeros", choices=PADDINGS)
    """padding of every 3 x 3 convolution: zeros, or circular for fields on a periodic domain
    (rdlens patterns: Gray-Scott states)"""
    conditions: int = setting(0, low=0, high=16)
    """numbers each image is conditioned on (rdlens patterns: the (F, k) of its Gray-Scott
    setting), embedded and added to the time embedding of every block (0: unconditioned)"""

    def __post_init__(self) -> None:
        validate(self)
        widest = max([c for c in self.channels if isinstance(c, int)] or [1])
        for name in ("groups", "heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= widest:
                raise ConfigError(f"{name} must be an integer in [1, {widest}] (the widest channel count), "
                                  f"got {value!r}")
        if self.network == "public-code":
            if self.conditions:
                raise ConfigError("the public-code network takes no conditions; use network = rdlens")
            if self.padding != "zeros":
                raise ConfigError("the public-code network pads with zeros only")
            from rdlens.systems.ddpm.unet_public import check_layers

            check_layers(tuple(self.channels), tuple(self.attention), self.groups, self.heads, self.image_size)
            return
        if not self.channels or any(c < 1 for c in self.channels):
            raise ConfigError(f"channels must be a non-empty list of positive widths, got {self.channels}")
        bad = [c for c in self.channels if c % self.groups]
        if bad:
            raise ConfigError(f"channel widths {bad} are not divisible by groups = {self.groups}")
        if any(not 0 <= a < len(self.channels) for a in self.attention):
            raise ConfigError(f"attention levels must be in [0, {len(self.channels) - 1}], got {self.attention}")
        if self.image_size % (2 ** (len(self.channels) - 1)):
            raise ConfigError(f"image_size {self.image_size} is not divisible by 2^{len(self.channels) - 1} "
                              f"({len(self.channels)} levels)")


def timestep_embedding(s: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (0-based) step indices, (batch,) -> (batch, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=s.device, dtype=torch.float32) / half)
    args = s.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _conv3(c_in: int, c_out: int, padding: str, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode=padding)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int, groups: int, dropout: float, padding: str = "zeros") -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = _conv3(c_in, c_out, padding)
        self.temb = nn.Linear(t_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _conv3(c_out, c_out, padding)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the pixels of a feature map, with a residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, hh * ww).transpose(2, 3).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(1, 2).reshape(b, c, hh, ww))


class UNet(nn.Module):
    """eps_theta(x_t, s[, cond]): (batch, C, H, W), (batch,) long[, (batch, conditions)] -> (batch, C, H, W)."""

    def __init__(self, cfg: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        ch, g, p, pad = cfg.channels, cfg.groups, cfg.dropout, cfg.padding
        t_dim = 4 * ch[0]
        self.t_dim = ch[0]
        self.time = nn.Sequential(nn.Linear(ch[0], t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.conv_in = _conv3(cfg.in_channels, ch[0], pad)
        self.down = nn.ModuleList()
        skips = [ch[0]]
        c = ch[0]
        for level, width in enumerate(ch):
            for _ in range(cfg.res_blocks):
                self.down.append(ResBlock(c, width, t_dim, g, p, pad))
                c = width
                if level in cfg.attention:
                    self.down.append(Attention(c, g))
                skips.append(c)
            if level < len(ch) - 1:
                self.down.append(_conv3(c, c, pad, stride=2))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, t_dim, g, p, pad), Attention(c, g), ResBlock(c, c, t_dim, g, p, pad)])
        self.up = nn.ModuleList()
        for level in reversed(range(len(ch))):
            for _ in range(cfg.res_blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), ch[level], t_dim, g, p, pad))
                c = ch[level]
                if level in cfg.attention:
                    self.up.append(Attention(c, g))
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
                self.up.append(_conv3(c, c, pad))
        self.norm_out = nn.GroupNorm(g, c)
        self.conv_out = _conv3(c, cfg.in_channels, pad)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        # built last, so that an unconditioned network draws the same initial weights as before
        self.condition = (nn.Sequential(nn.Linear(cfg.conditions, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
                          if cfg.conditions else None)

    def forward(self, x: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        temb = self.time(timestep_embedding(s, self.t_dim))
        if self.condition is not None:
            if cond is None or cond.shape != (x.shape[0], self.cfg.conditions):
                raise ConfigError(f"this U-Net is conditioned on {self.cfg.conditions} numbers per image: needs "
                                  f"cond of shape ({x.shape[0]}, {self.cfg.conditions}), "
                                  f"got {None if cond is None else tuple(cond.shape)}")
            temb = temb + self.condition(cond.to(temb.dtype))
        h = self.conv_in(x)
        hs = [h]
        for m in self.down:
            if isinstance(m, ResBlock):
                h = m(h, temb)
                hs.append(h)
            elif isinstance(m, Attention):
                h = m(h)
                hs[-1] = h
            else:
                h = m(h)
                hs.append(h)
        for m in self.mid:
            h = m(h, temb) if isinstance(m, ResBlock) else m(h)
        for m in self.up:
            if isinstance(m, ResBlock):
                h = m(torch.cat([h, hs.pop()], dim=1), temb)
            else:
                h = m(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def build(cfg: UNetConfig) -> nn.Module:
    """The eps network that ``cfg.network`` names."""
    if cfg.network == "public-code":
        from rdlens.systems.ddpm.unet_public import PublicCodeUNet

        return PublicCodeUNet(cfg.in_channels, tuple(cfg.channels), tuple(cfg.attention), cfg.groups, cfg.dropout,
                              cfg.heads, cfg.image_size)
    return UNet(cfg)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def image_flops(cfg: UNetConfig, size: int | None = None) -> float:
    """Floating-point operations of one forward pass on one image (of ``size`` x ``size``
    pixels; default the configured size), counted on a randomly initialised network."""
    from rdlens.core.torchutil import forward_flops

    size = size or cfg.image_size
    x = torch.zeros(1, cfg.in_channels, size, size)
    extra = (torch.zeros(1, cfg.conditions),) if cfg.conditions else ()
    return forward_flops(build(cfg).eval(), x, torch.zeros(1, dtype=torch.long), *extra)
