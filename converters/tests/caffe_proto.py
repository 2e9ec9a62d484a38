"""Independent oracle: the few caffe.proto messages built at runtime with the protobuf library itself."""
from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def _message(file: Any, name: str, fields: list[tuple[str, int, int, int, str, bool]]) -> None:
    msg = file.message_type.add(name=name)
    for fname, number, ftype, label, type_name, packed in fields:
        f = msg.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
        if packed:
            f.options.packed = True


def _classes() -> dict[str, type]:
    file = descriptor_pb2.FileDescriptorProto(name="psanet_test_caffe.proto", package="testcaffe", syntax="proto2")
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    _message(file, "BlobShape", [("dim", 1, F.TYPE_INT64, rep, "", True)])
    _message(file, "BlobProto", [
        ("num", 1, F.TYPE_INT32, opt, "", False), ("channels", 2, F.TYPE_INT32, opt, "", False),
        ("height", 3, F.TYPE_INT32, opt, "", False), ("width", 4, F.TYPE_INT32, opt, "", False),
        ("data", 5, F.TYPE_FLOAT, rep, "", True), ("shape", 7, F.TYPE_MESSAGE, opt, ".testcaffe.BlobShape", False),
        ("double_data", 8, F.TYPE_DOUBLE, rep, "", True),
    ])
    _message(file, "LayerParameter", [
        ("name", 1, F.TYPE_STRING, opt, "", False), ("type", 2, F.TYPE_STRING, opt, "", False),
        ("bottom", 3, F.TYPE_STRING, rep, "", False),
        ("blobs", 7, F.TYPE_MESSAGE, rep, ".testcaffe.BlobProto", False),
        ("bn_momentum_like", 152, F.TYPE_FLOAT, opt, "", False),  # stands in for the fork's unknown params
    ])
    _message(file, "V1LayerParameter", [
        ("name", 4, F.TYPE_STRING, opt, "", False), ("type", 5, F.TYPE_INT32, opt, "", False),
        ("blobs", 6, F.TYPE_MESSAGE, rep, ".testcaffe.BlobProto", False),
    ])
    _message(file, "NetParameter", [
        ("name", 1, F.TYPE_STRING, opt, "", False),
        ("layers", 2, F.TYPE_MESSAGE, rep, ".testcaffe.V1LayerParameter", False),
        ("input", 3, F.TYPE_STRING, rep, "", False),
        ("layer", 100, F.TYPE_MESSAGE, rep, ".testcaffe.LayerParameter", False),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    names = ("BlobShape", "BlobProto", "LayerParameter", "V1LayerParameter", "NetParameter")
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"testcaffe.{n}")) for n in names}


PROTO = _classes()
NetParameter = PROTO["NetParameter"]
