"""Blob-shape inference over a parsed network definition, written from Caffe's layer semantics (test oracle)."""
from __future__ import annotations

from prototxt.parse import Message, layers, value, values

Shape = tuple[int, ...]


def _window(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil: bool) -> int:
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _conv(layer: Message, shape: Shape) -> Shape:
    get = lambda key, default: value(layer, f"convolution_param.{key}", default)  # noqa: E731
    k, s, p, d = get("kernel_size", None), get("stride", 1), get("pad", 0), get("dilation", 1)
    n, _, h, w = shape
    return n, get("num_output", None), _window(h, k, s, p, d, False), _window(w, k, s, p, d, False)


def _pool(layer: Message, shape: Shape) -> Shape:
    get = lambda key, default: value(layer, f"pooling_param.{key}", default)  # noqa: E731
    k, s, p = get("kernel_size", None), get("stride", 1), get("pad", 0)
    n, c, h, w = shape
    if get("global_pooling", False):
        return n, c, 1, 1
    return n, c, _window(h, k, s, p, 1, True), _window(w, k, s, p, 1, True)


def _interp(layer: Message, shape: Shape) -> Shape:
    zoom = value(layer, "interp_param.zoom_factor", 1)
    shrink = value(layer, "interp_param.shrink_factor", 1)
    n, c, h, w = shape
    if value(layer, "interp_param.height") is not None:  # explicit size (pyramid and image pooling)
        return n, c, value(layer, "interp_param.height"), value(layer, "interp_param.width")
    size = lambda x: ((x - 1) // shrink + 1) + ((x - 1) // shrink) * (zoom - 1)  # noqa: E731
    return n, c, size(h), size(w)


def _psa(layer: Message, feature: Shape, mask: Shape) -> Shape:
    n, c, h, w = feature
    mh = value(layer, "pointwise_spatial_attention_param.attention_mask_height", 2 * h - 1)
    mw = value(layer, "pointwise_spatial_attention_param.attention_mask_width", 2 * w - 1)
    if mask != (n, mh * mw, h, w):
        raise ValueError(f"{value(layer, 'name')}: mask {mask} does not fit feature {feature} and {mh}x{mw}")
    return feature


def infer(net: Message) -> dict[str, Shape]:
    """Shape of every blob, from the `input`/`input_dim` header through each layer in order."""
    dims = values(net, "input_dim")
    shapes = {name: tuple(dims[4 * i:4 * i + 4]) for i, name in enumerate(values(net, "input"))}
    for layer in layers(net):
        kind, name = value(layer, "type"), value(layer, "name")
        inputs = [shapes[b] for b in values(layer, "bottom")]
        if kind == "Convolution":
            out = _conv(layer, inputs[0])
        elif kind == "Pooling":
            out = _pool(layer, inputs[0])
        elif kind == "Interp":
            out = _interp(layer, inputs[0])
        elif kind == "Concat":
            if len({(s[0], *s[2:]) for s in inputs}) != 1:
                raise ValueError(f"{name}: concat of {inputs}")
            out = (inputs[0][0], sum(s[1] for s in inputs), *inputs[0][2:])
        elif kind == "Eltwise":
            if len(set(inputs)) != 1:
                raise ValueError(f"{name}: eltwise of {inputs}")
            out = inputs[0]
        elif kind == "PointwiseSpatialAttention":
            out = _psa(layer, *inputs)
        elif kind == "SoftmaxWithLoss":
            if inputs[0][2:] != inputs[1][2:]:
                raise ValueError(f"{name}: logits {inputs[0]} vs label {inputs[1]}")
            out = ()
        else:  # BN, ReLU, Dropout keep the shape
            out = inputs[0]
        shapes[value(layer, "top")] = out
    return shapes
