from pathlib import Path

import pandas as pd
from PIL import Image

from qgnb.data import Record, RecordDataset, Sample, shapes, summary


def sample(name, split, size, phrase, boxes, image_id):
    meta = {"dataset": "toy", "split": split, "image_id": image_id}
    return Sample(name, Image.new("RGB", size), phrase, boxes, meta=meta)


def test_summary_values_on_a_hand_made_list():
    table = summary(
        [
            sample("a", "id", (10, 10), "a b", [[0, 0, 5, 5]], "im1"),
            sample("b", "id", (10, 10), "a b c d", [[0, 0, 10, 10], [0, 0, 1, 1]], "im1"),
            sample("c", "ood", (20, 10), "x", [[0, 0, 10, 10]], "im2"),
        ]
    )
    expected = pd.DataFrame(
        {
            "dataset": ["toy", "toy"],
            "split": ["id", "ood"],
            "samples": [2, 1],
            "images": [1, 1],
            "boxes_per_sample": [1.5, 1.0],
            "words_mean": [3.0, 1.0],
            "words_min": [2, 1],
            "words_max": [4, 1],
            # id areas 0.25, 1.0, 0.01; percentiles 0.01 + 0.2 * 0.24, 0.25, 0.25 + 0.8 * 0.75
            "box_area_p10": [0.058, 0.5],
            "box_area_median": [0.25, 0.5],
            "box_area_p90": [0.85, 0.5],
        }
    )
    pd.testing.assert_frame_equal(table, expected)


def test_summary_of_loader_records_opens_no_image():
    records = [
        Record("r1", Path("/no/such.jpg"), "a dog", [[0, 0, 2, 4]], (4, 4), "f: 1", {"split": "t"}),
    ]
    table = summary(RecordDataset(records))
    assert table.loc[0, "box_area_median"] == 0.5 and table.loc[0, "dataset"] == "?"


def test_summary_of_shapes_splits():
    table = summary([*shapes("id", n=30), *shapes("ood", n=20)])
    assert table["split"].tolist() == ["id", "ood"] and table["samples"].tolist() == [30, 20]
    assert table["images"].tolist() == [30, 20]
    assert (table["boxes_per_sample"] == 1).all() and (table["words_min"] >= 2).all()
    assert (table["box_area_p90"] < 0.15).all() and (table["box_area_p10"] > 0.01).all()


def test_summary_of_nothing_is_an_empty_table():
    assert summary([]).empty
