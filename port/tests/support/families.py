"""An independent oracle for the PyTorch PSANet families: their eval forward written out in plain functional
operators over a checkpoint in their own key names (hszhao/semseg model/psanet.py + model/resnet.py, mmsegmentation
PSAHead + ResNetV1c + EncoderDecoder), as their sources state it; the attention buffer from the PSA op's reference."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from port.config import COLLECT, DISTRIBUTE
from port.ops.reference import psa_mask_reference

Tensors = Mapping[str, torch.Tensor]


def _cbr(x: torch.Tensor, s: Tensors, conv: str, bn: str, stride: int = 1, pad: int = 0, dilation: int = 1,
         relu: bool = True) -> torch.Tensor:
    x = F.conv2d(x, s[f"{conv}.weight"], None, stride, pad, dilation)
    x = F.batch_norm(x, s[f"{bn}.running_mean"], s[f"{bn}.running_var"], s[f"{bn}.weight"], s[f"{bn}.bias"], False,
                     0.0, 1e-5)
    return torch.relu(x) if relu else x


def _trunk(s: Tensors, x: torch.Tensor, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(layer3, layer4) outputs: deep stem, floor max pooling, strides on the 3x3, dilations 2 and 4."""
    stem, pre = ("layer0", "") if family == "semseg" else ("backbone.stem", "backbone.")
    for i in range(3):
        x = _cbr(x, s, f"{stem}.{3 * i}", f"{stem}.{3 * i + 1}", 2 if i == 0 else 1, 1)
    x = F.max_pool2d(x, 3, 2, 1)
    outputs = []
    for layer, (stride, dilation) in enumerate(((1, 1), (2, 1), (1, 2), (1, 4)), start=1):
        b = 0
        while f"{pre}layer{layer}.{b}.conv1.weight" in s:
            p = f"{pre}layer{layer}.{b}"
            d = dilation // 2 if family == "mmseg" and b == 0 and dilation > 1 else dilation  # contract_dilation
            st = stride if b == 0 else 1
            out = _cbr(x, s, f"{p}.conv1", f"{p}.bn1")
            out = _cbr(out, s, f"{p}.conv2", f"{p}.bn2", st, d, d)
            out = _cbr(out, s, f"{p}.conv3", f"{p}.bn3", relu=False)
            short = _cbr(x, s, f"{p}.downsample.0", f"{p}.downsample.1", st, relu=False) if b == 0 else x
            x = torch.relu(out + short)
            b += 1
        outputs.append(x)
    return outputs[2], outputs[3]


def _attend(x: torch.Tensor, mask: torch.Tensor, psa_type: int, mask_hw: tuple[int, int]) -> torch.Tensor:
    n, c, h, w = x.shape
    buffer = torch.softmax(psa_mask_reference(mask, psa_type, *mask_hw), dim=1)
    return torch.bmm(x.reshape(n, c, h * w), buffer.reshape(n, h * w, h * w)).reshape(n, c, h, w)


def family_forward(s: Tensors, x: torch.Tensor, family: str, mask_hw: tuple[int, int]) -> torch.Tensor:
    """Eval-mode logits of a bi-directional PSANet checkpoint `s` of `family` ("semseg" or "mmseg") for input x."""
    identity = _trunk(s, x, family)[1]
    h, w = identity.shape[-2:]
    mm = family == "mmseg"
    if mm and not (h % 2 and w % 2):
        size, align = (h // 2, w // 2), False
    else:
        size, align = ((h - 1) // 2 + 1, (w - 1) // 2 + 1), True
    head = "decode_head." if mm else "psa."
    branches = []
    for tail, psa_type in (("", COLLECT), ("_p", DISTRIBUTE)):
        conv, bn = (f"{head}reduce{tail}.conv", f"{head}reduce{tail}.bn") if mm else (f"{head}reduce{tail}.0",
                                                                                        f"{head}reduce{tail}.1")
        y = F.interpolate(_cbr(identity, s, conv, bn), size=size, mode="bilinear", align_corners=align)
        att = f"{head}attention{tail}"
        hidden = _cbr(y, s, f"{att}.0.conv", f"{att}.0.bn") if mm else _cbr(y, s, f"{att}.0", f"{att}.1")
        mask = F.conv2d(hidden, s[f"{att}.{1 if mm else 3}.weight"])
        branches.append(_attend(y, mask, psa_type, mask_hw))
    both = torch.cat(branches, 1)
    if mm:
        out = _cbr(both, s, f"{head}proj.conv", f"{head}proj.bn", pad=1)
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=align)
        out = _cbr(torch.cat([identity, out], 1), s, f"{head}bottleneck.conv", f"{head}bottleneck.bn", pad=1)
        logits = F.conv2d(out, s[f"{head}conv_seg.weight"], s[f"{head}conv_seg.bias"])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    out = _cbr(both, s, "psa.proj.0", "psa.proj.1")
    out = F.interpolate(out, size=((size[0] - 1) * 2 + 1, (size[1] - 1) * 2 + 1), mode="bilinear", align_corners=True)
    out = _cbr(torch.cat([identity, out], 1), s, "cls.0", "cls.1", pad=1)
    logits = F.conv2d(out, s["cls.4.weight"], s["cls.4.bias"])
    rows, cols = ((d - 1) // 8 * 8 + 1 for d in x.shape[-2:])
    return F.interpolate(logits, size=(rows, cols), mode="bilinear", align_corners=True)
