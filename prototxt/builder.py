"""Accumulates Caffe layers with the PSANet release's conventions (BN/ReLU in place, msra fillers, lr multipliers)."""
from __future__ import annotations

from dataclasses import dataclass, field

from prototxt.emit import Ident, Message, Value


def _mults(*pairs: tuple[float, float]) -> Message:
    return [("param", [("lr_mult", lr), ("decay_mult", decay)]) for lr, decay in pairs]


@dataclass
class NetBuilder:
    """Layers of one network; `frozen_bn` selects running (deploy) or batch (train) BN statistics."""

    frozen_bn: bool
    bn_momentum: float
    layers: list[Message] = field(default_factory=list)

    def add(self, name: str, kind: str, bottoms: list[str], top: str, *body: tuple[str, Value]) -> str:
        """Append one layer; returns its top blob."""
        fields: Message = [("name", name), ("type", kind)]
        fields += [("bottom", b) for b in bottoms] + [("top", top)]
        self.layers.append(fields + list(body))
        return top

    def conv(
        self, name: str, bottom: str, width: int, kernel: int = 1, stride: int = 1, dilation: int = 1,
        lr: float = 1, bias: bool = False,
    ) -> str:
        """Convolution padded to keep the size at stride 1; bias only where asked (the classifiers)."""
        pad = dilation * (kernel - 1) // 2
        conv: Message = [("num_output", width), ("kernel_size", kernel), ("stride", stride)]
        conv += [("pad", pad)] if pad else []
        conv += [("dilation", dilation)] if dilation > 1 else []
        conv += [("weight_filler", [("type", "msra")])]
        conv += [] if bias else [("bias_term", False)]
        mults = _mults((lr, 1), (2 * lr, 1)) if bias else _mults((lr, 1))
        return self.add(name, "Convolution", [bottom], name, *mults, ("convolution_param", conv))

    def bn(self, blob: str, lr: float = 1) -> str:
        """The fork's BN layer in place on `blob`: slope and bias learnt, running mean/variance not."""
        param: Message = [
            ("slope_filler", [("type", "constant"), ("value", 1)]),
            ("bias_filler", [("type", "constant"), ("value", 0)]),
            ("frozen", self.frozen_bn),
            ("momentum", self.bn_momentum),
        ]
        mults = _mults((lr, 0), (lr, 0), (0, 0), (0, 0))
        self.add(f"{blob}/bn", "BN", [blob], blob, *mults, ("bn_param", param))
        return blob

    def relu(self, blob: str) -> str:
        """ReLU in place."""
        return self.add(f"{blob}/relu", "ReLU", [blob], blob)

    def conv_bn(self, name: str, bottom: str, width: int, relu: bool = True, **conv: float) -> str:
        """Convolution + BN (+ ReLU), the unit every non-classifier convolution uses."""
        self.bn(self.conv(name, bottom, width, **conv), lr=conv.get("lr", 1))
        return self.relu(name) if relu else name

    def dropout(self, blob: str, ratio: float) -> str:
        """Dropout in place."""
        return self.add(f"{blob}/dropout", "Dropout", [blob], blob, ("dropout_param", [("dropout_ratio", ratio)]))

    def interp(self, name: str, bottom: str, zoom: int = 1, shrink: int = 1, pads: bool = True) -> str:
        """The fork's bilinear Interp layer with a zoom or shrink factor and no cropping (`pads`: say so explicitly)."""
        factor = ("zoom_factor", zoom) if zoom > 1 else ("shrink_factor", shrink)
        param: Message = [factor] + ([("pad_beg", 0), ("pad_end", 0)] if pads else [])
        return self.add(name, "Interp", [bottom], name, ("interp_param", param))

    def interp_to(self, name: str, bottom: str, height: int, width: int) -> str:
        """The fork's Interp layer resizing to an explicit height and width."""
        return self.add(name, "Interp", [bottom], name, ("interp_param", [("height", height), ("width", width)]))

    def ave_pool(self, name: str, bottom: str, kernel: int, stride: int) -> str:
        """Average pooling without padding."""
        param: Message = [("pool", Ident("AVE")), ("kernel_size", kernel), ("stride", stride)]
        return self.add(name, "Pooling", [bottom], name, ("pooling_param", param))

    def concat(self, name: str, bottoms: list[str]) -> str:
        """Channel concatenation."""
        return self.add(name, "Concat", bottoms, name)

    def softmax_loss(self, name: str, logits: str, label: str, weight: float | None, ignore: int) -> str:
        """SoftmaxWithLoss ignoring `ignore`; `weight` None keeps Caffe's default of 1."""
        body: list[tuple[str, Value]] = [] if weight is None else [("loss_weight", weight)]
        body.append(("loss_param", [("ignore_label", ignore)]))
        return self.add(name, "SoftmaxWithLoss", [logits, label], name, *body)

    def psa(self, name: str, feature: str, mask: str, psa_type: str, param: Message) -> str:
        """The fork's PointwiseSpatialAttention layer; `param` holds everything but the type."""
        body: Message = [("psa_type", Ident(psa_type))] + param
        return self.add(name, "PointwiseSpatialAttention", [feature, mask], name,
                        ("pointwise_spatial_attention_param", body))
