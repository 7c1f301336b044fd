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
    assert data[0].id == "spatialsense/test/r1"
    assert data.skipped == {"label_false": 1, "bad_box": 0}
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


def write(root, images):
    (root / "annotations.json").write_text(json.dumps(images))


def annotations(root):
    return json.loads((root / "annotations.json").read_text())


@pytest.mark.parametrize(("entity", "bbox"), [("subject", [5, 15, 2, 50]),
                                              ("subject", [15, 15, 2, 12]),
                                              ("subject", [15, 5, 2, 12]),
                                              ("object", [10, 30, 40, 0])])
def test_degenerate_box_in_the_data_is_skipped_and_counted_or_raised(root, entity, bbox):
    # Outside the image, zero height, inverted (subject), inverted (object): the official loader
    # carries on, so the relation is left out and counted; the rest of the split loads.
    images = annotations(root)
    images[0]["annotations"][0][entity]["bbox"] = bbox
    write(root, images)
    data = load_spatialsense(root)
    assert [s.id for s in data] == ["spatialsense/test/r3"]
    assert data.skipped == {"label_false": 1, "bad_box": 1}
    with pytest.raises(ValueError, match=rf"image 0 \(5704634119_8b8ccf3229.jpg\) relation r1 "
                       rf"{entity}: box .*(outside|empty or inverted)"):
        load_spatialsense(root, bad_boxes="raise")


def test_malformed_relation_is_named(root):
    images = annotations(root)
    del images[0]["annotations"][0]["predicate"]
    write(root, images)
    with pytest.raises(ValueError, match="relation r1: malformed record, no 'predicate'"):
        load_spatialsense(root)


@pytest.mark.parametrize(("label", "kept"), [(True, True), (1, True), ("true", True),
                                             ("TRUE", True), (False, False), (0, False),
                                             ("false", False)])
def test_label_spellings(root, label, kept):
    # Decision (documented in load_spatialsense): JSON booleans, 0/1 as the official loader's
    # float cast reads them, and "true"/"false" strings mean what they say.
    images = annotations(root)
    images[0]["annotations"][0]["label"] = label
    write(root, images)
    data = load_spatialsense(root)
    assert ("spatialsense/test/r1" in [r.id for r in data.records]) == kept
    assert data.skipped["label_false"] == (1 if kept else 2)


@pytest.mark.parametrize("label", ["yes", 2, None, 0.5, [True]])
def test_other_labels_are_refused(root, label):
    images = annotations(root)
    images[0]["annotations"][0]["label"] = label
    write(root, images)
    with pytest.raises(ValueError, match=r"relation r1: label .* is not true or false"):
        load_spatialsense(root)


@pytest.mark.parametrize(("change", "message"), [
    (lambda im: im[0].update(width="40"), r"image 0: field 'width' must be an integer, got '40'"),
    (lambda im: im[0].update(url=None), r"image 0: field 'url' must be a string, got None"),
    (lambda im: im[0].update(annotations={}), r"image 0: field 'annotations' must be a list"),
    (lambda im: im[0]["annotations"][0]["subject"].update(bbox=["5", "15", "2", "12"]),
     r"relation r1 subject: bbox \[y0, y1, x0, x1\] \['5', '15', '2', '12'\] must be 4 numbers"),
    (lambda im: im[0]["annotations"][0]["object"].update(name=3),
     r"relation r1 object: field 'name' must be a string, got 3"),
    (lambda im: im[0]["annotations"][0].update(predicate=["on"]),
     r"relation r1: field 'predicate' must be a string"),
    (lambda im: im[0]["annotations"].__setitem__(0, "r1"),
     r"relation 0: malformed record, expected an object"),
])
def test_every_annotation_value_is_type_checked(root, change, message):
    images = annotations(root)
    change(images)
    write(root, images)
    with pytest.raises(ValueError, match=message):
        load_spatialsense(root)


def test_malformed_file_and_unreadable_image_are_named(root):
    (root / "images/nyu/kitchen_0001.png").write_bytes(b"not a png")
    data = load_spatialsense(root)
    with pytest.raises(ValueError, match=r"relation r3: sample 'spatialsense/test/r3': image "
                       r".*kitchen_0001\.png cannot be read"):
        data[1]
    text = (root / "annotations.json").read_text()
    (root / "annotations.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"annotations\.json: not valid JSON, truncated"):
        load_spatialsense(root)
