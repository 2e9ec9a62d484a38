"""PSA operators: compiled kernels when the extension is built, else the pure-PyTorch reference."""
from port.ops.reference import psa_aggregate_reference as psa_aggregate
from port.ops.reference import psa_mask_reference as psa_mask

__all__ = ["psa_aggregate", "psa_mask"]
