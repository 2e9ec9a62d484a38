"""Pure-PyTorch semantics of the psanet operators (the fork's PointwiseSpatialAttention layer, its Interp zoom
followed by SoftmaxWithLoss, its train-mode BN followed by ReLU, a convolution's weight gradient by taps, the Winograd
3x3 convolution); the oracle for the kernels."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from port.config import COLLECT, DISTRIBUTE, zoom_out


def _window_index(h: int, w: int, mask_h: int, mask_w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For every (source q, target p) pair: the mask channel that links them, and whether one does.

    Both results are (h*w, h*w), indexed [q, p]; q = a*w + b, p = y*w + x, channel
    (a - y + half_h) * mask_w + (b - x + half_w) as in paper Eq. 9.
    """
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    dh = rows[:, None] - rows[None, :] + (mask_h - 1) // 2  # [a, y]
    dw = cols[:, None] - cols[None, :] + (mask_w - 1) // 2  # [b, x]
    ok_h = (dh >= 0) & (dh < mask_h)
    ok_w = (dw >= 0) & (dw < mask_w)
    channel = dh.clamp(0, mask_h - 1)[:, None, :, None] * mask_w + dw.clamp(0, mask_w - 1)[None, :, None, :]
    valid = ok_h[:, None, :, None] & ok_w[None, :, None, :]
    return channel.reshape(h * w, h * w), valid.reshape(h * w, h * w)


def psa_mask_reference(
    mask: torch.Tensor, psa_type: int, mask_h: int, mask_w: int, compact: bool = False
) -> torch.Tensor:
    """Scatter a (N, mask_h*mask_w, H, W) attention mask into the layer's zero-filled (N, H*W, H, W) buffer.

    COLLECT gives buffer[n, q, p] with q the source and p the target position, DISTRIBUTE its
    transpose; `compact` masks have H*W channels indexed by absolute position, not by offset.
    """
    if psa_type not in (COLLECT, DISTRIBUTE):
        raise ValueError(f"psa_type must be COLLECT ({COLLECT}) or DISTRIBUTE ({DISTRIBUTE}), got {psa_type}")
    n, channels, h, w = mask.shape
    if channels != mask_h * mask_w:
        raise ValueError(f"mask has {channels} channels, expected {mask_h}*{mask_w}={mask_h * mask_w}")
    hw = h * w
    flat = mask.reshape(n, channels, hw)
    if compact:
        if (mask_h, mask_w) != (h, w):
            raise ValueError(f"a compact mask must be {h}x{w}, got {mask_h}x{mask_w}")
        buffer = flat
    else:
        channel, valid = _window_index(h, w, mask_h, mask_w, mask.device)
        target = torch.arange(hw, device=mask.device).expand(hw, hw)
        buffer = torch.where(valid, flat[:, channel, target], 0)  # +0 where unlinked, as the layer's zero fill
    if psa_type == DISTRIBUTE:
        buffer = buffer.transpose(1, 2)
    return buffer.reshape(n, hw, h, w)


def psa_aggregate_reference(
    x: torch.Tensor,
    mask: torch.Tensor,
    psa_type: int,
    mask_h: int,
    mask_w: int,
    softmax: bool,
    normalization_factor: float,
    compact: bool = False,
) -> torch.Tensor:
    """The whole PSA layer: top[n, c, p] = sum_q x[n, c, q] * buffer[n, q, p] / normalization_factor.

    NOTE: the fork's softmax runs over all H*W buffer entries of a target, the zeros a small
    mask leaves uncovered included; kept so outputs match the released models' layer.
    """
    n, c, h, w = x.shape
    if mask.shape[0] != n or mask.shape[2:] != x.shape[2:]:
        raise ValueError(f"x {tuple(x.shape)} and mask {tuple(mask.shape)} differ in batch or spatial size")
    buffer = psa_mask_reference(mask, psa_type, mask_h, mask_w, compact).reshape(n, h * w, h * w)
    if softmax:
        buffer = torch.softmax(buffer, dim=1)
    out = torch.bmm(x.reshape(n, c, h * w), buffer) / normalization_factor
    return out.reshape(n, c, h, w)


def interp_reference(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The fork's Interp resize of (N, C, H, W) x: PyTorch's aligned-corner bilinear interpolation."""
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=True)


def zoom_cross_entropy_reference(
    logits: torch.Tensor, labels: torch.Tensor, zoom: int, ignore_index: int
) -> torch.Tensor:
    """Per-pixel cross-entropy of the aligned-corner bilinear x`zoom` of logits against labels, 0 where ignored: the
    zoomed (N, C, H, W) logits materialised, as the released train definitions' Interp + SoftmaxWithLoss have them."""
    h, w = logits.shape[-2:]
    if zoom > 1:
        logits = interp_reference(logits, zoom_out(h, zoom), zoom_out(w, zoom))
    return F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")


def batch_norm_relu_reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, relu: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train-mode BN over the batch's statistics (biased variance), then ReLU if `relu`: (out in x's dtype, mean,
    1/sqrt(var + eps)), the statistics in float32 for half-type x. Differentiable through plain operators."""
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    mean = xf.mean(dim=(0, 2, 3))
    centred = xf - mean[None, :, None, None]
    invstd = torch.rsqrt(centred.square().mean(dim=(0, 2, 3)) + eps)
    out = centred * (invstd * weight)[None, :, None, None] + bias[None, :, None, None]
    out = torch.relu(out) if relu else out
    return out.to(x.dtype), mean.detach(), invstd.detach()


def conv_weight_grad_reference(
    x: torch.Tensor, grad: torch.Tensor, kernel: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]
) -> torch.Tensor:
    """The weight gradient (O, C, kh, kw) of conv2d(x, weight, stride 1, padding, dilation) given the output's
    gradient, one matrix product per tap: the input zero-padded into channels-last Hp x Wp planes with slack rows, the
    gradient into the same planes (zero outside its pixels), tap (i, j) a row-shifted slice of the padded input."""
    n, c, h, w = x.shape
    o, ho, wo = grad.shape[1:]
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    rows = n * hp * wp
    slack = (kernel[0] - 1) * dilation[0] * wp + (kernel[1] - 1) * dilation[1]
    planes = x.new_zeros(rows + slack, c)
    planes[:rows].view(n, hp, wp, c)[:, padding[0]:padding[0] + h, padding[1]:padding[1] + w] = x.permute(0, 2, 3, 1)
    g = grad.new_zeros(n, hp, wp, o)
    g[:, :ho, :wo] = grad.permute(0, 2, 3, 1)
    gt = g.view(rows, o).t()
    taps = [
        gt @ planes[i * dilation[0] * wp + j * dilation[1]:][:rows] for i in range(kernel[0]) for j in range(kernel[1])
    ]
    return torch.stack(taps, dim=1).view(o, kernel[0], kernel[1], c).permute(0, 3, 1, 2)


# Winograd F(2x2, 3x3) (Lavin and Gray, 2016): input, weight and output transforms.
WINOGRAD_BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
WINOGRAD_G = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
WINOGRAD_AT = ((1, 1, 1, 0), (0, 1, -1, -1))


def winograd_tiles(size: int, dilation: int) -> int:
    """Tiles along a side of `size` outputs: whole d x d interleaves of 2-output tiles (d = dilation)."""
    return -(-size // (2 * dilation)) * dilation


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """The transform G g G^T (16, C, O) of a 3x3 weight (O, C, 3, 3), in the weight's dtype."""
    g = torch.tensor(WINOGRAD_G, dtype=weight.dtype, device=weight.device)
    u = torch.einsum("ak,oikl,bl->abio", g, weight, g)
    return u.reshape(16, weight.shape[1], weight.shape[0])


def winograd_conv3x3_reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int, relu: bool
) -> torch.Tensor:
    """conv2d(x, weight, bias, stride 1, padding = dilation = d) (then ReLU) as the kernel computes it: the weight
    transformed (winograd_weight), tile (i, p) of a side covering outputs 2*d*i + p + d*{0, 1} and inputs
    2*d*i + p + d*{-1..2} (zeros outside), each 4x4 input tile transformed (B^T d B), one matrix product per
    transformed plane, each product tile transformed back (A^T m A)."""
    n, c, h, w = x.shape
    d = dilation
    ti, tj = winograd_tiles(h, d), winograd_tiles(w, d)
    padded = x.new_zeros(n, 2 * ti + 2 * d, 2 * tj + 2 * d, c)  # rows -d .. 2*ti + d - 1 of the image
    padded[:, d:d + h, d:d + w] = x.permute(0, 2, 3, 1)
    s = padded.stride()
    tiles = padded.as_strided(  # (n, i, p, j, q, a, b, c): input row 2*d*i + p + d*a of the padded image
        (n, ti // d, d, tj // d, d, 4, 4, c), (s[0], 2 * d * s[1], s[1], 2 * d * s[2], s[2], d * s[1], d * s[2], 1)
    )
    bt = torch.tensor(WINOGRAD_BT, dtype=x.dtype, device=x.device)
    at = torch.tensor(WINOGRAD_AT, dtype=x.dtype, device=x.device)
    v = torch.einsum("ka,nipjqabc,lb->klnipjqc", bt, tiles, bt).reshape(16, -1, c)
    m = torch.bmm(v, winograd_weight(weight)).view(4, 4, n, ti // d, d, tj // d, d, -1)
    y = torch.einsum("ua,abnipjqo,vb->niupjvqo", at, m, at).reshape(n, 2 * ti, 2 * tj, -1)[:, :h, :w]
    if bias is not None:
        y = y + bias
    y = torch.relu(y) if relu else y
    return y.contiguous().permute(0, 3, 1, 2)
