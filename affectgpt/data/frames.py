"""Frame preprocessing shared by the data loaders (in their workers) and the vision encoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_crop(frames: torch.Tensor, size: tuple[int, int], interpolation: str = "bicubic",
                resize_mode: str = "shortest") -> torch.Tensor:
    """uint8 [N,H,W,3] → float [N,3,S,S] in 0..1: open_clip's eval resize (shorter side, or squash)
    and centre crop, without the mean/std step. Runs in data-loader workers."""
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    th, tw = size
    h, w = x.shape[-2:]
    if resize_mode == "squash":
        new = (th, tw)
    else:  # torchvision Resize(int): shorter side to the target, longer side truncated like torchvision
        short = max(th, tw)
        new = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    if new != (h, w):
        x = F.interpolate(x, size=new, mode=interpolation, align_corners=False, antialias=True).clamp_(0, 1)
    # torchvision CenterCrop rounds the offset
    top, left = int(round((x.shape[-2] - th) / 2.0)), int(round((x.shape[-1] - tw) / 2.0))
    return x[..., top : top + th, left : left + tw].contiguous()
