"""Batch-wise image augmentation on tensors, on whatever device the batch lives.

Random draws come from the training loop's CPU generator, so a seeded job augments the same way
every run; only the small per-sample offsets and flags travel to the batch's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _crop_windows(
    padded: torch.Tensor, size: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """One random ``size`` window per sample of a padded (N, C, H', W') batch."""
    n, channels, padded_h, padded_w = padded.shape
    height, width = size
    device = padded.device
    top = torch.randint(0, padded_h - height + 1, (n,), generator=generator).to(device)
    left = torch.randint(0, padded_w - width + 1, (n,), generator=generator).to(device)
    rows = (top[:, None] + torch.arange(height, device=device))[:, None, :, None]
    cols = (left[:, None] + torch.arange(width, device=device))[:, None, None, :]
    samples = torch.arange(n, device=device)[:, None, None, None]
    planes = torch.arange(channels, device=device)[None, :, None, None]
    return padded[samples, planes, rows, cols]


def random_shift(
    batch: torch.Tensor, generator: torch.Generator, max_shift: int, fill: float
) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels each way, filling with ``fill``."""
    pad = (max_shift,) * 4
    padded = F.pad(batch, pad, mode="constant", value=fill)
    return _crop_windows(padded, tuple(batch.shape[-2:]), generator)


def random_crop_reflect(
    batch: torch.Tensor, generator: torch.Generator, padding: int
) -> torch.Tensor:
    """Reflect-pad each image by ``padding`` pixels and crop back to its size at random."""
    padded = F.pad(batch, (padding,) * 4, mode="reflect")
    return _crop_windows(padded, tuple(batch.shape[-2:]), generator)


def random_hflip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability one half."""
    flip = torch.rand(batch.shape[0], generator=generator) < 0.5
    return torch.where(flip.to(batch.device)[:, None, None, None], batch.flip(-1), batch)
