import hashlib

import numpy as np
import pytest
from torch.utils.data import DataLoader

from qgnb.data import (
    COLOURS,
    HELD_OUT_PAIRS,
    ID_BACKGROUNDS,
    OOD_BACKGROUNDS,
    SHAPE_NAMES,
    SHAPES_VOCABULARY,
    SIZES,
    describe,
    hard_negatives,
    referents,
    shapes,
)
from qgnb.data.shapes import _shape_mask

# A few hundred samples per split: enough to see every kind of scene, a second or two each.
N = 300
SAMPLES = {split: list(shapes(split, n=N)) for split in ("train", "id", "ood")}


def scene(*objects):
    return {
        "objects": [dict(zip(("colour", "shape", "size", "box"), o, strict=True)) for o in objects]
    }


def check_mask(shape, extent, expected):
    np.testing.assert_array_equal(_shape_mask(shape, extent), np.array(expected, dtype=bool))


def test_rasterised_shapes_by_pixel_centre():
    check_mask("square", 2, [[1, 1], [1, 1]])
    check_mask("circle", 4, [[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]])
    check_mask("triangle", 4, [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [1, 1, 1, 1]])
    diamond = [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]]
    check_mask("diamond", 5, diamond)
    cross = np.zeros((6, 6), dtype=bool)
    cross[:, 2:4] = cross[2:4, :] = True
    check_mask("cross", 6, cross)


def test_same_arguments_give_identical_bytes_and_index_alone_decides():
    again = shapes("id", n=N)
    for k in (0, 7, N - 1):
        first, second = SAMPLES["id"][k], again[k]
        assert first.image.tobytes() == second.image.tobytes()
        assert (first.phrase, first.boxes, first.meta) == (second.phrase, second.boxes, second.meta)
        np.testing.assert_array_equal(first.mask, second.mask)
    assert shapes("id", n=10)[3].image.tobytes() == SAMPLES["id"][3].image.tobytes()


def test_seeds_and_splits_give_different_images():
    other_seed = shapes("id", n=20, seed=1)
    assert all(other_seed[k].image.tobytes() != SAMPLES["id"][k].image.tobytes() for k in range(20))
    train = {s.image.tobytes() for s in SAMPLES["train"]}
    assert not train & {s.image.tobytes() for s in SAMPLES["id"]}


def test_boxes_are_tight_boxes_of_masks_and_objects_do_not_overlap():
    for samples in SAMPLES.values():
        for sample in samples:
            rows = np.flatnonzero(sample.mask.any(axis=1))
            cols = np.flatnonzero(sample.mask.any(axis=0))
            assert sample.boxes == [[cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]]
            boxes = [o["box"] for o in sample.meta["objects"]]
            assert boxes[sample.meta["target"]] == sample.boxes[0]
            for i, a in enumerate(boxes):
                for b in boxes[i + 1 :]:
                    assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_target_pixels_have_the_target_colour():
    for sample in SAMPLES["id"][:50]:
        target = sample.meta["objects"][sample.meta["target"]]
        inside = np.asarray(sample.image, dtype=int)[sample.mask].mean(axis=0)
        assert np.abs(inside - COLOURS[target["colour"]]).max() <= 16


def test_phrases_are_unique_referring_expressions_in_their_scene():
    for samples in SAMPLES.values():
        for sample in samples:
            meta = sample.meta
            assert referents(meta, sample.phrase) == [meta["target"]], sample.id
            rendered = describe(
                meta,
                meta["target"],
                meta["relation"],
                meta["attributes"],
                meta["anchor_attributes"],
            )
            assert rendered == sample.phrase
            assert set(sample.phrase.split()) <= set(SHAPES_VOCABULARY)


def test_phrases_are_the_shortest_unambiguous_ones():
    for sample in SAMPLES["id"]:
        meta, words = sample.meta, len(sample.phrase.split())
        target = meta["objects"][meta["target"]]
        colour, shape, size = target["colour"], target["shape"], target["size"]
        plain = [f"the {shape}", f"the {colour} {shape}", f"the {size} {shape}"]
        plain.append(f"the {size} {colour} {shape}")
        for phrase in plain:
            if len(phrase.split()) < words:
                assert referents(meta, phrase) != [meta["target"]], (sample.id, phrase)


def test_many_phrases_need_more_than_the_shape_and_some_need_a_relation():
    samples = SAMPLES["train"]
    longer = sum(len(s.phrase.split()) > 2 for s in samples) / N
    relational = sum(s.meta["relation"] is not None for s in samples) / N
    two_attributes = sum(len(s.meta["attributes"]) == 2 for s in samples) / N
    assert longer > 0.6 and relational > 0.08 and two_attributes > 0.03
    assert {r for s in samples if s.meta["relation"] for r in [s.meta["relation"][0]]} == {
        "left of",
        "right of",
        "above",
        "below",
    }


def test_ood_shifts_colour_shape_pairs_and_backgrounds_as_documented():
    for split in ("train", "id"):
        pairs = {(o["colour"], o["shape"]) for s in SAMPLES[split] for o in s.meta["objects"]}
        assert not pairs & HELD_OUT_PAIRS
        assert len(pairs) == len(COLOURS) * len(SHAPE_NAMES) - len(HELD_OUT_PAIRS)
        assert {s.meta["background"] for s in SAMPLES[split]} == set(ID_BACKGROUNDS)
    ood = SAMPLES["ood"]
    targets = {
        (
            s.meta["objects"][s.meta["target"]]["colour"],
            s.meta["objects"][s.meta["target"]]["shape"],
        )
        for s in ood
    }
    assert targets == set(HELD_OUT_PAIRS)
    assert {s.meta["background"] for s in ood} == set(OOD_BACKGROUNDS)


def test_vocabulary_covers_every_word_and_nothing_else():
    expected = {"the", "left", "right", "of", "above", "below", *COLOURS, *SHAPE_NAMES, *SIZES}
    assert set(SHAPES_VOCABULARY) == expected
    words = {w for samples in SAMPLES.values() for s in samples for w in s.phrase.split()}
    assert words == expected


def test_referents_on_a_hand_made_scene():
    meta = scene(
        ("red", "circle", "small", [0, 0, 10, 10]),
        ("red", "circle", "small", [20, 0, 30, 10]),
        ("blue", "square", "large", [40, 0, 60, 20]),
        ("red", "circle", "large", [0, 30, 20, 50]),
    )
    assert referents(meta, "the red circle") == [0, 1, 3]
    assert referents(meta, "the small circle left of the square") == [0, 1]
    assert referents(meta, "the circle above the large circle") == [0, 1]
    assert referents(meta, "the square right of the large circle") == [2]
    assert referents(meta, "the circle right of the circle") == []
    assert referents(meta, "the large circle below the blue square") == [3]
    assert referents(meta, "the large circle right of the blue square") == []
    with pytest.raises(ValueError, match="grammar"):
        referents(meta, "a red circle")
    with pytest.raises(ValueError, match="relation"):
        referents(meta, "the circle near the square")


def test_describe_and_hard_negatives_on_a_hand_made_scene():
    meta = scene(
        ("red", "circle", "small", [0, 0, 10, 10]),
        ("blue", "circle", "small", [20, 0, 30, 10]),
    )
    meta.update(target=0, relation=None, attributes=["colour"], anchor_attributes=[])
    assert describe(meta, 1, ("right of", 0), ["size"], ["colour"]) == (
        "the small circle right of the red circle"
    )
    negatives = hard_negatives(meta)
    assert "the red square" in negatives and "the large red circle" in negatives
    assert "the blue circle" not in negatives and "the red circle" not in negatives
    assert len(negatives) == 4 + 4 + 1
    with pytest.raises(ValueError, match="anchor"):
        describe(meta, 0, ("left of", 0))


def test_hard_negatives_of_generated_samples_refer_to_nothing():
    for sample in SAMPLES["id"][:100]:
        negatives = hard_negatives(sample.meta)
        assert len(negatives) >= 5
        assert all(referents(sample.meta, n) == [] for n in negatives)


def test_lazy_sequence_indexing_and_errors():
    data = shapes("train", n=5, size=48)
    assert len(data) == 5 and data[1].image.size == (48, 48)
    assert [s.id for s in data[1:4]] == ["shapes/train/0/1", "shapes/train/0/2", "shapes/train/0/3"]
    assert data[-1].id == "shapes/train/0/4" and len(list(data)) == 5
    with pytest.raises(IndexError, match="out of range for 5"):
        data[5]
    with pytest.raises(ValueError, match="unknown split 'test'"):
        shapes("test")
    with pytest.raises(ValueError, match="size"):
        shapes("id", size=16)
    with pytest.raises(ValueError, match="seed"):
        shapes("id", seed=-1)


@pytest.mark.parametrize(
    "split, digest",
    [
        ("train", "efd7b9966be28a2e6bff9fadbfb15d0c6d783928de0d971631c31448230cbd01"),
        ("id", "7d288122fcae109f0785841c05db73bb00071012c0a9cff87df0d00ae9af0d7f"),
        ("ood", "6828a8f9deb2e0ea9d8c63d8b9625a9ac8b1fbe110e2a78211cce5d75a51da87"),
    ],
)
def test_first_samples_match_the_recorded_bytes(split, digest):
    # Recorded once; any machine (with the pinned numpy) must reproduce them byte for byte.
    content = hashlib.sha256()
    for sample in SAMPLES[split][:8]:
        content.update(sample.image.tobytes())
        content.update(sample.phrase.encode())
    assert content.hexdigest() == digest


def test_a_torch_data_loader_batches_the_lazy_sequence():
    loader = DataLoader(shapes("id", n=10), batch_size=4, collate_fn=list)
    batches = list(loader)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert batches[1][0].image.tobytes() == SAMPLES["id"][4].image.tobytes()
