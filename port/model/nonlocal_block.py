"""NonLocal head (paper Table 1): one embedded-Gaussian non-local block (Wang et al., CVPR 2018) on conv5_3."""
from __future__ import annotations

import torch
from torch import nn

from port.config import PSANetConfig
from port.model.conv import Conv2d
from port.model.heads import register
from port.model.layers import ConvBN


class EmbeddedGaussian(nn.Module):
    """y_i = sum_j softmax_j(theta_i . phi_j / sqrt(d)) g_j over all positions j (no weights of its own)."""

    def forward(self, theta: torch.Tensor, phi: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        n, d, h, w = theta.shape
        queries = theta.flatten(2).transpose(1, 2)  # N x HW x d
        affinity = torch.softmax(queries @ phi.flatten(2) * d**-0.5, dim=-1)  # N x HW(i) x HW(j)
        return (g.flatten(2) @ affinity.transpose(1, 2)).view(n, g.shape[1], h, w)


class Residual(nn.Module):
    """Caffe-style `Eltwise` SUM of the block input and its output branch."""

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x + z


class NonLocalHead(nn.Module):
    """conv5_3 + W_z(attention(theta, phi, g)): 1x1 embeddings to trunk/2, output 1x1 + BN (slope 0), same width."""

    def __init__(self, cfg: PSANetConfig, trunk: int) -> None:
        super().__init__()
        inner = max(1, trunk // 2)
        self.conv5_3_nl_theta = Conv2d(trunk, inner, 1)
        self.conv5_3_nl_phi = Conv2d(trunk, inner, 1)
        self.conv5_3_nl_g = Conv2d(trunk, inner, 1)
        self.conv5_3_nl_attention = EmbeddedGaussian()
        # BN slope 0: the block starts as the identity (Wang et al.); the trainer's fillers keep it.
        self.conv5_3_nl_out = ConvBN(
            inner, trunk, relu=False, eps=cfg.bn_eps, momentum=cfg.bn_momentum, bn_slope_filler=0.0
        )
        self.conv5_3_nl = Residual()
        self.out_channels = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv5_3_nl_attention(self.conv5_3_nl_theta(x), self.conv5_3_nl_phi(x), self.conv5_3_nl_g(x))
        return self.conv5_3_nl(x, self.conv5_3_nl_out(y))


@register("nonlocal")
def nonlocal_head(cfg: PSANetConfig, trunk: int) -> NonLocalHead:
    """Factory for `PSANetConfig(head="nonlocal")`."""
    return NonLocalHead(cfg, trunk)
