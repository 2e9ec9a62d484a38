"""Class tables: the datasets', a user's files of names and colours, the generic one, the round trip through a file."""
from __future__ import annotations

from pathlib import Path

import pytest

from port.classes import CLASS_COLORS, ClassTable, model_classes, read_class_names, read_palette


def test_palette_files_take_three_spellings_and_name_a_bad_line(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("1 2 3\n\n#0aFf10\n 4,5,6 \n")
    assert read_palette(tmp_path / "p.txt") == ((1, 2, 3), (10, 255, 16), (4, 5, 6))
    (tmp_path / "bad.txt").write_text("1 2 3\n1 2 300\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'R G B'"):
        read_palette(tmp_path / "bad.txt")
    (tmp_path / "names.txt").write_text(" sky \n\nroad\n")
    assert read_class_names(tmp_path / "names.txt") == ("sky", "road")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_class_names(tmp_path / "empty.txt")


def test_generic_palette_is_the_voc_colour_map() -> None:
    assert ClassTable.generic(21).colors == CLASS_COLORS["voc2012"]  # the VOC table, transcribed independently
    assert len(set(ClassTable.generic(256).colors)) == 256


def test_a_models_table_comes_from_its_file_then_its_dataset_then_generic() -> None:
    mine = ClassTable(("a", "b"), ((1, 2, 3), (4, 5, 6)))
    assert model_classes(2, mine.to_source(), "ade20k") == mine
    assert model_classes(150, {}, "ade20k") == ClassTable.for_dataset("ade20k")
    assert model_classes(7, {}, "ade20k") == ClassTable.generic(7)  # a class count the dataset does not have
    with pytest.raises(ValueError, match="not 3 strings"):
        model_classes(3, mine.to_source(), None)
