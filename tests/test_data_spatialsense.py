import json

import pytest
from PIL import Image

from qgnb.data import load_spatialsense


def relation(_id, predicate, subject, subject_box, obj, object_box, label=True):
    return {
        "_id": _id,
        "predicate": predicate,
        "subject": {"x": 1, "y": 1, "name": subject, "bbox": subject_box},
        "object": {"x": 1, "y": 1, "name": obj, "bbox": object_box},
        "label": label,
    }


@pytest.fixture
def root(tmp_path):
    images = [
        {
            "url": "https://farm4.staticflickr.com/3543/5704634119_8b8ccf3229.jpg",
            "nsid": "10392797@N03",
            "height": 30,
            "width": 40,
            "split": "test",
            "annotations": [
                relation("r1", "on", "cup", [5, 15, 2, 12], "table", [10, 30, 0, 40]),
                relation("r2", "under", "cup", [5, 15, 2, 12], "table", [10, 30, 0, 40], False),
            ],
        },
        {
            "url": "nyu/kitchen_0001.png",
            "height": 20,
            "width": 20,
            "split": "test",
            "annotations": [
                relation("r3", "to the left of", "pan", [0, 20, 0, 5], "pot", [0, 4, 6, 20])
            ],
        },
        {"url": "nyu/other.png", "height": 9, "width": 9, "split": "train", "annotations": []},
    ]
    (tmp_path / "annotations.json").write_text(json.dumps(images))
    (tmp_path / "images/flickr").mkdir(parents=True)
    (tmp_path / "images/nyu").mkdir(parents=True)
    Image.new("RGB", (40, 30)).save(tmp_path / "images/flickr/5704634119_8b8ccf3229.jpg")
    Image.new("RGB", (20, 20)).save(tmp_path / "images/nyu/kitchen_0001.png")
    return tmp_path


def test_true_relations_ground_the_subject_with_the_whole_relation_as_phrase(root):
    data = load_spatialsense(root, "test")
    assert [s.phrase for s in data] == ["cup on table", "pan to the left of pot"]
    assert data[0].boxes == [[2.0, 5.0, 12.0, 15.0]]
    assert data[0].meta["other_box"] == [0.0, 10.0, 40.0, 30.0]
    assert data[1].boxes == [[0.0, 0.0, 5.0, 20.0]] and data[1].image.size == (20, 20)
    assert data[0].id == "spatialsense/test/r1" and data.skipped == {"label_false": 1}
    assert data.records[1].image_path == root / "images/nyu/kitchen_0001.png"
    assert data[0].meta["subject"] == "cup" and data[0].meta["predicate"] == "on"


def test_ground_object_option(root):
    data = load_spatialsense(root, "test", ground="object")
    assert data[0].boxes == [[0.0, 10.0, 40.0, 30.0]] and data[0].phrase == "cup on table"
    with pytest.raises(ValueError, match="ground must be one of"):
        load_spatialsense(root, ground="both")


def test_unknown_split_and_missing_files(root):
    with pytest.raises(ValueError, match="unknown split 'val'"):
        load_spatialsense(root, "val")
    (root / "images/nyu/kitchen_0001.png").unlink()
    with pytest.raises(FileNotFoundError, match="image 1: image not found: .*kitchen_0001.png"):
        load_spatialsense(root)
    (root / "annotations.json").unlink()
    with pytest.raises(FileNotFoundError, match="annotations.json"):
        load_spatialsense(root)


def test_box_outside_the_image_and_malformed_relation_are_named(root):
    images = json.loads((root / "annotations.json").read_text())
    images[0]["annotations"][0]["subject"]["bbox"] = [5, 15, 2, 50]
    (root / "annotations.json").write_text(json.dumps(images))
    with pytest.raises(ValueError, match=r"image 0 \(5704634119_8b8ccf3229.jpg\) relation r1"):
        load_spatialsense(root)
    del images[0]["annotations"][0]["predicate"]
    images[0]["annotations"][0]["subject"]["bbox"] = [5, 15, 2, 12]
    (root / "annotations.json").write_text(json.dumps(images))
    with pytest.raises(ValueError, match="relation r1: malformed record, no 'predicate'"):
        load_spatialsense(root)
