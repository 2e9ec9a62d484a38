"""mmsegmentation plugin for Caffe-release PSANets written by converters/torch2mmseg.py (imported by the config it
writes, `custom_imports`; needs mmsegmentation and mmcv with ops, as mmseg's own PSAHead does)."""
from mmseg.models.decode_heads.psa_head import PSAHead
from mmseg.registry import MODELS


@MODELS.register_module()
class CaffePSAHead(PSAHead):
    """mmseg's PSAHead with the Caffe release's conv_post_PSA: a 1x1 convolution without padding (mmseg's `proj`
    pads it by 1). With align_corners=True and 8k+1 inputs the rest of PSAHead is the release's head."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.proj.conv.padding = (0, 0)
