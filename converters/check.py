"""Check a caffemodel's weighted layers against a network definition: same names, types and output widths."""
from __future__ import annotations

from converters.caffemodel import Layer
from converters.infer import ConversionError
from prototxt.emit import Message
from prototxt.parse import named_layers, value

WEIGHTED = ("Convolution", "BN")


def check_against_prototxt(model_layers: list[Layer], net: Message) -> None:
    """Raise ConversionError naming the first layer where the caffemodel and the prototxt disagree."""
    defined = named_layers(net)
    weighted = {layer.name: layer for layer in model_layers if layer.blobs}
    for name, layer in weighted.items():
        spec = defined.get(name)
        if spec is None:
            continue  # Caffe ignores weights of layers the definition lacks (e.g. training-only ones)
        kind = value(spec, "type")
        if layer.type and kind != layer.type:
            raise ConversionError(f"layer {name!r} is a {layer.type} in the caffemodel, a {kind} in the prototxt")
        outputs = value(spec, "convolution_param.num_output")
        if kind == "Convolution" and outputs is not None and int(outputs) != layer.blobs[0].shape[0]:
            raise ConversionError(
                f"layer {name!r} has num_output {outputs} in the prototxt, {layer.blobs[0].shape[0]} in the caffemodel"
            )
    lacking = [name for name, spec in defined.items() if value(spec, "type") in WEIGHTED and name not in weighted]
    if lacking:
        raise ConversionError(f"prototxt layers with no weights in the caffemodel: {', '.join(lacking[:5])}")
