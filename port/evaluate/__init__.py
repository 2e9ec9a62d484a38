"""The authors' MATLAB evaluation (multi-scale sliding-window inference, mIoU / pixel accuracy) in PyTorch."""
from port.evaluate.datasets import LabelCodec, Sample, find_samples
from port.evaluate.inference import InferenceSettings, predict, predict_probabilities
from port.evaluate.metrics import SegmentationStats
from port.evaluate.runner import EvaluationResult, evaluate

__all__ = [
    "EvaluationResult",
    "InferenceSettings",
    "LabelCodec",
    "Sample",
    "SegmentationStats",
    "evaluate",
    "find_samples",
    "predict",
    "predict_probabilities",
]
