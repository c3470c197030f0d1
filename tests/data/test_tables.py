import numpy as np
import pandas as pd
import pytest

from neurontune.data.tables import content_digest, group_counts, split_arrays, validate_metadata


def table(**changes):
    frame = pd.DataFrame({"sample_id": [0, 1, 2, 3], "split": ["train", "val", "test", "train"],
                          "y": [0, 1, 0, 1], "a": [0, 0, 1, 1], "group": [0, 2, 1, 3]})
    return frame.assign(**changes)


def test_valid_table_passes():
    validate_metadata(table(), 2)


def test_missing_column_is_named():
    with pytest.raises(ValueError, match=r"metadata is missing column\(s\) \['a'\]"):
        validate_metadata(table().drop(columns="a"), 2)


def test_label_out_of_range_is_named():
    with pytest.raises(ValueError, match=r"column 'y' must hold integer labels in \[0, 2\)"):
        validate_metadata(table(y=[0, 1, 2, 0]), 2)


def test_empty_split_is_named():
    with pytest.raises(ValueError, match="empty split 'test'"):
        validate_metadata(table(split=["train", "val", "val", "train"]), 2)


def test_unknown_split_and_duplicate_ids():
    with pytest.raises(ValueError, match=r"unknown value\(s\) \['dev'\]"):
        validate_metadata(table(split=["train", "val", "test", "dev"]), 2)
    with pytest.raises(ValueError, match="'sample_id' has duplicates"):
        validate_metadata(table(sample_id=[0, 0, 1, 2]), 2)


def test_digest_changes_with_any_byte_and_label():
    inputs = np.zeros((4, 2), np.uint8)
    base = content_digest(inputs, table())
    assert base == content_digest(inputs.copy(), table())
    changed = inputs.copy()
    changed[0, 0] = 1
    assert content_digest(changed, table()) != base
    assert content_digest(inputs, table(y=[1, 1, 0, 1])) != base


def test_split_arrays_checks_alignment():
    inputs = np.arange(4)
    x, y, ids = split_arrays(inputs, table(), "train")
    assert x.tolist() == [0, 3] and y.tolist() == [0, 1] and ids.tolist() == [0, 3]
    with pytest.raises(ValueError, match="raw inputs have 3 samples but the metadata table has 4 rows"):
        split_arrays(inputs[:3], table(), "train")


def test_group_counts_layout():
    assert group_counts(table())["train"] == {"y=0,a=0": 1, "y=1,a=1": 1}


def test_which_splits_have_group_labels():
    from neurontune.data.tables import split_groups, splits_with_groups

    table = pd.DataFrame({"sample_id": range(6), "split": ["train", "train", "val", "val", "test", "test"],
                          "y": [0, 1, 0, 1, 0, 1], "a": [-1, -1, 0, -1, 0, 1], "group": [-1, -1, 0, -1, 0, 3]})
    assert splits_with_groups(table) == {"train": False, "val": False, "test": True}
    assert split_groups(table, "test").tolist() == [0, 3]
    assert splits_with_groups(table.drop(columns=["a", "group"])) == dict.fromkeys(("train", "val", "test"), False)
    assert split_groups(table.drop(columns=["a", "group"]), "test") is None
