import json
import struct

import pytest
from PIL import Image

from qgnb.data import load_refcoco


def py2_pickle(obj) -> bytes:
    # Writes what Python 2's cPickle (protocol 2) writes for str, so the test reads a file in
    # the real refs(unc).p encoding; Python 3's pickle would write unicode opcodes instead.
    def encode(value) -> bytes:
        if isinstance(value, str):
            return b"U" + bytes([len(value)]) + value.encode("ascii")
        if isinstance(value, bool) or value is None:
            return {True: b"\x88", False: b"\x89", None: b"N"}[value]
        if isinstance(value, int):
            return b"J" + struct.pack("<i", value)
        if isinstance(value, float):
            return b"G" + struct.pack(">d", value)
        if isinstance(value, list):
            return b"]" + (b"(" + b"".join(map(encode, value)) + b"e" if value else b"")
        items = b"".join(encode(k) + encode(v) for k, v in value.items())
        return b"}" + (b"(" + items + b"u" if value else b"")

    return b"\x80\x02" + encode(obj) + b"."


def ref(ref_id, ann_id, image_id, split, sentences):
    return {
        "ref_id": ref_id,
        "ann_id": ann_id,
        "image_id": image_id,
        "split": split,
        "category_id": 1,
        "file_name": f"COCO_train2014_{image_id:012d}_{ann_id}.jpg",
        "sentences": [
            {"sent_id": 100 * ref_id + k, "sent": s, "tokens": s.split(), "raw": s}
            for k, s in enumerate(sentences)
        ],
    }


@pytest.fixture
def root(tmp_path):
    """Two images (a grayscale one in refer's layout, an RGB one in train2014/), three refs."""
    refs = [
        ref(10, 100, 1, "testA", ["man on left", "left guy"]),
        ref(11, 101, 2, "testB", ["red car"]),
        ref(12, 100, 1, "train", ["anything"]),
    ]
    instances = {
        "images": [
            {"id": 1, "width": 40, "height": 30, "file_name": "COCO_train2014_000000000001.jpg"},
            {"id": 2, "width": 20, "height": 24, "file_name": "COCO_train2014_000000000002.jpg"},
        ],
        "annotations": [
            {
                "id": 100,
                "image_id": 1,
                "bbox": [2.5, 3.0, 10.0, 5.0],
                "segmentation": [[3, 3, 12, 3, 12, 8, 3, 8]],
                "category_id": 1,
            },
            {
                "id": 101,
                "image_id": 2,
                "bbox": [0.0, 0.0, 20.0, 24.4],
                "segmentation": {"counts": "abc", "size": [24, 20]},
                "category_id": 3,
            },
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }
    write(tmp_path, refs, instances)
    refer_images = tmp_path / "images/mscoco/images/train2014"
    refer_images.mkdir(parents=True)
    Image.new("L", (40, 30), 128).save(refer_images / "COCO_train2014_000000000001.jpg")
    (tmp_path / "train2014").mkdir()
    Image.new("RGB", (20, 24), "red").save(tmp_path / "train2014/COCO_train2014_000000000002.jpg")
    return tmp_path


def write(root, refs, instances):
    (root / "refcoco+").mkdir(exist_ok=True)
    (root / "refcoco+" / "refs(unc).p").write_bytes(py2_pickle(refs))
    (root / "refcoco+" / "instances.json").write_text(json.dumps(instances))


def test_testA_gives_one_sample_per_sentence_with_xyxy_box_and_rgb_image(root):
    data = load_refcoco(root, "refcoco+", "testA")
    assert [s.phrase for s in data] == ["man on left", "left guy"]
    first = data[0]
    assert first.boxes == [[2.5, 3.0, 12.5, 8.0]]
    assert first.image.mode == "RGB" and first.image.size == (40, 30)
    assert first.id == "refcoco+/testA/10/1000"
    assert first.meta["ref_id"] == 10 and first.meta["image_id"] == 1
    assert first.meta["split"] == "testA"
    # The polygon [3, 12] x [3, 8] holds the centres of columns 3-11 and rows 3-7.
    rows, cols = first.mask.any(axis=1).nonzero()[0], first.mask.any(axis=0).nonzero()[0]
    assert first.mask.sum() == 9 * 5 and (rows[0], rows[-1], cols[0], cols[-1]) == (3, 7, 3, 11)


def test_testB_reads_train2014_folder_and_clips_a_rounding_overshoot(root):
    (sample,) = load_refcoco(root, "refcoco+", "testB")
    assert sample.phrase == "red car" and sample.boxes == [[0.0, 0.0, 20.0, 24.0]]
    assert sample.mask is None  # run-length encoded segmentation: no mask
    red, green, blue = sample.image.getpixel((3, 3))  # JPEG: near, not exactly, pure red
    assert red > 240 and green < 16 and blue < 16


def test_unknown_split_and_dataset(root):
    with pytest.raises(ValueError, match=r"refs\(unc\)\.p: unknown split 'val'.*testA"):
        load_refcoco(root, "refcoco+", "val")
    with pytest.raises(ValueError, match="unknown dataset 'refclef'"):
        load_refcoco(root, "refclef")


def test_missing_files_are_named(root):
    with pytest.raises(FileNotFoundError, match=r"refs\(umd\)\.p"):
        load_refcoco(root, "refcoco+", "testA", split_by="umd")
    (root / "images/mscoco/images/train2014/COCO_train2014_000000000001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="ref_id 10: image not found at .*train2014"):
        load_refcoco(root, "refcoco+", "testA")
    (root / "refcoco+" / "instances.json").unlink()
    with pytest.raises(FileNotFoundError, match="instances.json"):
        load_refcoco(root)


def test_box_outside_the_image_names_file_and_annotation(root):
    instances = json.loads((root / "refcoco+" / "instances.json").read_text())
    instances["annotations"][0]["bbox"] = [30.0, 0.0, 20.0, 10.0]
    (root / "refcoco+" / "instances.json").write_text(json.dumps(instances))
    with pytest.raises(ValueError, match=r"instances.json: annotation 100 \(ref_id 10\).*outside"):
        load_refcoco(root)


def test_malformed_polygon_names_file_and_annotation(root):
    instances = json.loads((root / "refcoco+" / "instances.json").read_text())
    instances["annotations"][0]["segmentation"] = [[1, 2, 3, 4]]
    (root / "refcoco+" / "instances.json").write_text(json.dumps(instances))
    with pytest.raises(ValueError, match=r"annotation 100 \(ref_id 10\): polygon \[1, 2, 3, 4\]"):
        load_refcoco(root)


def test_malformed_ref_and_dangling_annotation_are_named(root):
    instances = json.loads((root / "refcoco+" / "instances.json").read_text())
    write(root, [ref(10, 999, 1, "testA", ["x"])], instances)
    with pytest.raises(ValueError, match="ref_id 10: ann_id 999 is not in"):
        load_refcoco(root)
    broken = ref(10, 100, 1, "testA", ["x"])
    del broken["ann_id"]
    write(root, [broken], instances)
    with pytest.raises(ValueError, match="ref_id 10: malformed record, no 'ann_id'"):
        load_refcoco(root)
