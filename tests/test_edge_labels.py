"""Folder-tree labelling shared by ``br35h-edge evaluate`` and ``python -m convert.external``."""

from pathlib import Path

import pytest

from edge_runtime.labels import LabelError, label_from_parts, label_of_name, label_tree


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"not decoded here")


def test_names_map_case_insensitively():
    assert [label_of_name(n) for n in ("YES", "Glioma", "tumour", "Pituitary", "meningioma", "tumor")] == ["yes"] * 6
    assert [label_of_name(n) for n in ("No", "notumor", "NO_TUMOR", "Normal")] == ["no"] * 4
    assert label_of_name("pred") is None and label_of_name("tumours") is None


def test_binary_and_tumour_type_trees(tmp_path):
    touch(tmp_path, "yes/y0.jpg", "no/n0.png", "Training/Glioma/g0.jpg", "Testing/notumor/t0.JPG",
          "Training/pituitary/deep/p0.jpg", "SHA256SUMS", "no/notes.txt")
    tree = label_tree(tmp_path)
    got = {p.path.relative_to(tmp_path).as_posix(): (p.label, p.original_class) for p in tree.items}
    assert got == {
        "yes/y0.jpg": ("yes", "yes"), "no/n0.png": ("no", "no"), "Training/Glioma/g0.jpg": ("yes", "glioma"),
        "Testing/notumor/t0.JPG": ("no", "notumor"), "Training/pituitary/deep/p0.jpg": ("yes", "pituitary"),
    }
    assert tree.counts() == {"glioma": 1, "no": 1, "notumor": 1, "pituitary": 1, "yes": 1}
    assert tree.unlabelled == ()


def test_root_itself_may_be_the_label_folder(tmp_path):
    touch(tmp_path / "scans" / "Normal", "a.jpg", "b.jpg")
    tree = label_tree(tmp_path / "scans" / "Normal")
    assert [(p.label, p.original_class) for p in tree.items] == [("no", "normal")] * 2


def test_nearest_folder_is_the_original_class():
    assert label_from_parts(["tumour", "glioma"], "x") == ("yes", "glioma")


def test_unlabelled_file_is_an_error_naming_it_unless_skipped(tmp_path):
    touch(tmp_path, "yes/y0.jpg", "no/n0.jpg", "pred/p0.jpg")
    with pytest.raises(LabelError, match=r"(?s)1 image\(s\).*pred/p0\.jpg"):
        label_tree(tmp_path)
    tree = label_tree(tmp_path, skip_unlabelled=True)
    assert len(tree.items) == 2 and [p.name for p in tree.unlabelled] == ["p0.jpg"]


def test_conflicting_folders_are_an_error_naming_the_file(tmp_path):
    touch(tmp_path, "yes/normal/x.jpg")
    with pytest.raises(LabelError, match=r"yes/normal/x\.jpg.*conflicting"):
        label_tree(tmp_path)


def test_empty_and_missing_roots(tmp_path):
    touch(tmp_path, "misc/readme.txt")
    with pytest.raises(LabelError, match="no labelled image"):
        label_tree(tmp_path)
    with pytest.raises(NotADirectoryError):
        label_tree(tmp_path / "nope")
