"""PSANet (ECCV 2018) ported from the authors' Caffe release: `create_model`, named builders, `load`."""
from port.model import BUILDERS, PSANet, create_model, load

globals().update(BUILDERS)

__all__ = ["PSANet", "create_model", "load", *BUILDERS]
