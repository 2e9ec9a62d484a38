"""PSANet (ECCV 2018) ported from the authors' Caffe release: `create_model`, named builders, `load`, `Segmenter`."""
from port.model import BUILDERS, PSANet, create_model, load
from port.segmenter import Segmentation, Segmenter

globals().update(BUILDERS)

__all__ = ["PSANet", "Segmentation", "Segmenter", "create_model", "load", *BUILDERS]
