"""Console entry points of the converters (pyproject's scripts)."""
from __future__ import annotations

from port.cli import console


def caffe2torch() -> None:
    console("caffe2torch", "converters.caffe2torch")


def torch2caffe() -> None:
    console("torch2caffe", "converters.torch2caffe")


def family2torch() -> None:
    console("family2torch", "converters.family2torch")


def torch2mmseg() -> None:
    console("torch2mmseg", "converters.torch2mmseg")
