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


def set_annotation(root, key, value, index=0):
    instances = json.loads((root / "refcoco+" / "instances.json").read_text())
    instances["annotations"][index][key] = value
    (root / "refcoco+" / "instances.json").write_text(json.dumps(instances))


@pytest.mark.parametrize("bbox", [[30.0, 0.0, 20.0, 10.0], [2.0, 3.0, 10.0, 0.0],
                                  [12.0, 3.0, -10.0, 5.0]])
def test_degenerate_box_in_the_data_is_skipped_and_counted_or_raised(root, bbox):
    # Outside the 40x30 image, zero height, negative width: a defect of the data set, so its
    # ref's two sentences are left out and counted, as refer's REFER would carry on.
    set_annotation(root, "bbox", bbox)
    data = load_refcoco(root, "refcoco+", "testA")
    assert len(data) == 0 and data.skipped == {"bad_box": 2}
    assert "skipped={'bad_box': 2}" in repr(data)
    assert len(load_refcoco(root, "refcoco+", "testB")) == 1  # the other ref is unaffected
    with pytest.raises(ValueError, match=r"instances.json: annotation 100 \(ref_id 10\): box "
                       r".* (outside|empty or inverted)"):
        load_refcoco(root, bad_boxes="raise")
    with pytest.raises(ValueError, match="bad_boxes must be one of"):
        load_refcoco(root, bad_boxes="ignore")


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


def test_pickle_that_would_run_code_is_refused_and_runs_nothing(root, tmp_path):
    marker = tmp_path / "marker"
    # Protocol 0: builtins.open(marker, "w") by REDUCE, as a crafted refs file would do.
    crafted = b"cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR."
    (root / "refcoco+" / "refs(unc).p").write_bytes(crafted)
    with pytest.raises(ValueError, match=r"refs\(unc\)\.p: not a readable refs pickle, refused "
                       r"\(the file asks for builtins\.open"):
        load_refcoco(root)
    assert not marker.exists()
    system = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    (root / "refcoco+" / "refs(unc).p").write_bytes(system)
    with pytest.raises(ValueError, match=r"asks for os\.system"):
        load_refcoco(root)
    assert not marker.exists()


def test_python2_protocol_0_refs_load(root):
    # What Python 2's cPickle.dump writes by default (protocol 0): a list of one dict.
    ref0 = (b"(lp0\n(dp1\nS'split'\np2\nS'testA'\np3\nsS'ref_id'\np4\nI10\nsS'ann_id'\np5\n"
            b"I100\nsS'image_id'\np6\nI1\nsS'sentences'\np7\n(lp8\n(dp9\nS'sent'\np10\n"
            b"S'man on left'\np11\nsS'sent_id'\np12\nI1000\nsasa.")
    (root / "refcoco+" / "refs(unc).p").write_bytes(ref0)
    (sample,) = load_refcoco(root)
    assert sample.id == "refcoco+/testA/10/1000" and sample.phrase == "man on left"


def test_split_test_is_the_union_of_testA_and_testB_as_in_refer(root):
    data = load_refcoco(root, "refcoco+", "test")
    assert [s.id for s in data] == ["refcoco+/testA/10/1000", "refcoco+/testA/10/1001",
                                    "refcoco+/testB/11/1100"]
    assert [r.meta["ref_split"] for r in data.records] == ["testA", "testA", "testB"]
    assert {r.meta["split"] for r in data.records} == {"test"}
    alone = [s.id for s in load_refcoco(root, "refcoco+", "testA")]
    assert alone == [s.id for s in data][:2]


def test_bbox_of_strings_is_refused_not_concatenated(root):
    set_annotation(root, "bbox", ["2.5", "3.0", "10.0", "5.0"])
    with pytest.raises(ValueError, match=r"annotation 100 \(ref_id 10\): bbox \[x, y, w, h\] "
                       r"\['2.5', '3.0', '10.0', '5.0'\] must be 4 numbers"):
        load_refcoco(root)


@pytest.mark.parametrize(("where", "key", "value", "message"), [
    ("image", "width", "40", r"instances.json: image 1: field 'width' must be an integer, "
                             r"got '40' \(str\)"),
    ("ref", "image_id", 1.5, r"refs\(unc\).p: ref_id 10: field 'image_id' must be an integer"),
    ("ref", "sentences", "man on left", r"ref_id 10: field 'sentences' must be a list"),
    ("sentence", "sent", 7, r"ref_id 10 sentence 1000: field 'sent' must be a string, got 7"),
    ("annotation", "segmentation", [[0, 0, "4", 0, 4, 4]], r"annotation 100 \(ref_id 10\): "
                                                          r"polygon .* must be 6 numbers"),
])
def test_every_annotation_value_is_type_checked(root, where, key, value, message):
    refs = [ref(10, 100, 1, "testA", ["man on left"]), ref(11, 101, 2, "testB", ["red car"])]
    instances = json.loads((root / "refcoco+" / "instances.json").read_text())
    {"image": instances["images"][0], "annotation": instances["annotations"][0],
     "ref": refs[0], "sentence": refs[0]["sentences"][0]}[where][key] = value
    write(root, refs, instances)
    with pytest.raises(ValueError, match=message):
        load_refcoco(root)


def test_truncated_jpeg_names_path_and_sample(root):
    image = root / "images/mscoco/images/train2014/COCO_train2014_000000000001.jpg"
    image.write_bytes(image.read_bytes()[:300])
    data = load_refcoco(root)
    with pytest.raises(ValueError, match=r"ref_id 10 sentence 1000: sample "
                       r"'refcoco\+/testA/10/1000': image .*COCO_train2014_000000000001\.jpg "
                       r"cannot be read"):
        data[0]


def test_malformed_instances_file_is_named(root):
    path = root / "refcoco+" / "instances.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(ValueError, match=r"instances\.json: not valid JSON, truncated"):
        load_refcoco(root)
    path.write_bytes(b'{"images": "\xff\xfe"}')
    with pytest.raises(ValueError, match=r"instances\.json: not UTF-8 text at byte 12"):
        load_refcoco(root)
    path.write_text("[]")
    with pytest.raises(ValueError, match=r"instances\.json: expected a COCO object, got list"):
        load_refcoco(root)
    (root / "refcoco+" / "refs(unc).p").write_bytes(b"\x80\x02]q\x00(K\x01")
    with pytest.raises(ValueError, match=r"refs\(unc\)\.p: not a readable refs pickle"):
        load_refcoco(root)
