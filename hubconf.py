"""torch.hub entry points: every registered variant (port.variants), built locally, from local weights only.

    model = torch.hub.load("path/to/this/checkout", "psanet101_ade20k", source="local", weights="X.safetensors")

Names: each variant's full name (psanet101_ade20k_465, its ablations, the PSPNets and the Table 1 heads) and, for the
released models, the name without the crop (psanet101_ade20k). `weights`: a file written by caffe2torch or port.train
whose config is the variant's (keyword overrides such as width_divisor=32 apply to both); without it the weights are
the initial ones. Nothing is downloaded: the released weights are the authors' caffemodels, converted by the user.
"""
from __future__ import annotations

from port.hub import entry_points as _entry_points

dependencies = ["torch", "numpy", "safetensors"]

globals().update(_entry_points())
