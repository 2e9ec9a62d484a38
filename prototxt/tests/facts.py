"""Facts of the released models, typed here on purpose: an oracle independent of port.config."""

FEATURE = {"ade20k": 59, "voc2012": 59, "cityscapes": 89}
PSA_INPUT = {"ade20k": 30, "voc2012": 59, "cityscapes": 45}
MASK_CHANNELS = {"ade20k": 3481, "voc2012": 13689, "cityscapes": 7921}
CROP = {"ade20k": 465, "voc2012": 465, "cityscapes": 705}
CLASSES = {"ade20k": 150, "voc2012": 21, "cityscapes": 19}
DEPLOY_BN = {50: 61, 101: 112}
LAST_CONV4 = {50: "conv4_6", 101: "conv4_23"}
