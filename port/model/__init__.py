"""The PyTorch PSANet, its Caffe name table and the named builders."""
from port.model import aspp, global_pool, nonlocal_block, psp  # noqa: F401 - registers the Table 1 context heads
from port.model.builders import BUILDERS, create_model, load, match_variant
from port.model.caffe_names import blob_modules, caffe_layers, logits_blob, param_table
from port.model.psanet import PSANet, PSANetOutput

globals().update(BUILDERS)

__all__ = [
    "PSANet",
    "PSANetOutput",
    "create_model",
    "load",
    "match_variant",
    "caffe_layers",
    "param_table",
    "logits_blob",
    "blob_modules",
    *BUILDERS,
]
