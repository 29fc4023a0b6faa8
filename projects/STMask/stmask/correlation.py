"""The local correlation of STMask's temporal fusion (Li et al., CVPR 2021, §3.2, Eq. 10), in plain PyTorch.

For every location of frame t's feature map and every displacement (dy, dx) in a d x d square around it, the
dot product of the two frames' feature vectors, divided by the number of channels:

    C[(dy + r) * d + (dx + r), y, x] = <f_t[:, y, x], f_t+1[:, y + dy, x + dx]> / C,    r = (d - 1) / 2

(zero outside frame t+1's map). This is what the official code computes with the compiled
``spatial_correlation_sampler`` (kernel 1, patch d, stride 1, dilation 1); here it is d^2 shifted products,
so it runs on any device without an extra package.
"""
import torch
import torch.nn.functional as F

__all__ = ["local_correlation"]


def local_correlation(first: torch.Tensor, second: torch.Tensor, patch_size: int = 11) -> torch.Tensor:
    """(B, C, H, W) feature maps of two frames -> (B, d * d, H, W) correlations, d = ``patch_size`` (odd)."""
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd and positive, got {patch_size}")
    if first.shape != second.shape:
        raise ValueError(f"the two feature maps differ in shape: {tuple(first.shape)} vs {tuple(second.shape)}")
    r = patch_size // 2
    height, width = first.shape[-2:]
    padded = F.pad(second, (r, r, r, r))
    out = [
        (first * padded[..., dy : dy + height, dx : dx + width]).sum(dim=1)
        for dy in range(patch_size)
        for dx in range(patch_size)
    ]
    return torch.stack(out, dim=1) / first.shape[1]
