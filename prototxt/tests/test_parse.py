"""The text-format writer and reader agree with each other and with the format's rules."""
from __future__ import annotations

import pytest

from prototxt.emit import Ident, render
from prototxt.parse import PrototxtError, layers, named_layers, parse, value, values


def test_round_trip_keeps_types_order_and_nesting() -> None:
    message = [
        ("name", 'odd "name" \\ here'),
        ("layer", [("type", "X"), ("param", [("lr_mult", 10), ("decay_mult", 0)]), ("frozen", False)]),
        ("layer", [("ratio", 0.1), ("pool", Ident("MAX")), ("param", [("lr_mult", 2.5)])]),
    ]
    assert parse("\n".join(render(message))) == message


def test_reader_accepts_comments_colon_before_brace_and_one_line_messages() -> None:
    text = '# head\nlayer: { name: "a" top: "a" } # tail\nlayer {\n  name: "b"  # inline\n  x: -1.5e-3\n}\n'
    net = parse(text)
    assert [value(layer, "name") for layer in layers(net)] == ["a", "b"]
    assert values(net, "layer.x") == [-1.5e-3]


def test_reader_reads_single_quotes_enums_and_numbers_as_their_types() -> None:
    net = parse("name: 'it\\'s' pool: MAX flag: true n: 7 r: .5 e: 1E3")
    assert net == [("name", "it's"), ("pool", "MAX"), ("flag", True), ("n", 7), ("r", 0.5), ("e", 1000.0)]
    assert [type(v) for _, v in net] == [str, Ident, bool, int, float, float]


def test_named_layers_indexes_by_name_last_wins() -> None:
    net = parse('layer { name: "a" type: "Convolution" } layer { type: "Input" } layer { name: "a" type: "BN" }')
    assert {name: value(layer, "type") for name, layer in named_layers(net).items()} == {"a": "BN", "": "Input"}


@pytest.mark.parametrize(
    "text",
    ["layer { name: 1", "}", 'name: "unterminated', "key", "name: }", ": 5", "{ a: 1 }", "a: 1 }", "layer < a: 1 >"],
)
def test_reader_rejects_broken_text(text: str) -> None:
    with pytest.raises(PrototxtError):
        parse(text)


def test_value_refuses_ambiguous_paths() -> None:
    with pytest.raises(ValueError):
        value(parse("a: 1 a: 2"), "a")
