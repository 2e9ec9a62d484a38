"""The PyTorch PSANet, its Caffe name table and the named builders."""
from port.model import aspp, global_pool, nonlocal_block  # noqa: F401 - registers the Table 1 context heads
from port.model.builders import BUILDERS, create_model, match_variant
from port.model.caffe_names import blob_modules, caffe_layers, param_table
from port.model.psanet import PSANet, PSANetOutput

globals().update(BUILDERS)

__all__ = [
    "PSANet",
    "PSANetOutput",
    "create_model",
    "match_variant",
    "caffe_layers",
    "param_table",
    "blob_modules",
    *BUILDERS,
]
