import numpy as np
import pytest
from PIL import Image

from qgnb.data import Sample


def make(boxes, mask=None, mode="RGB", size=(8, 6)):
    return Sample("s7", Image.new(mode, size), "the thing", boxes, mask)


def test_boxes_become_floats_and_whole_image_box_is_allowed():
    sample = make([[0, 0, 8, 6], (1, 2, 3.5, 4)])
    assert sample.boxes == [[0.0, 0.0, 8.0, 6.0], [1.0, 2.0, 3.5, 4.0]]
    assert sample.meta == {}


def test_mask_is_kept_when_it_matches_the_image():
    mask = np.zeros((6, 8), dtype=bool)
    mask[2:4, 1:3] = True
    assert make([[1, 2, 3, 4]], mask).mask.sum() == 4


@pytest.mark.parametrize(
    "boxes, message",
    [
        ([], "at least one box"),
        ([[1, 2, 3]], "4 numbers"),
        ([[1, 2, float("nan"), 4]], "non-finite"),
        ([[3, 2, 3, 4]], "x2 <= x1"),
        ([[1, 4, 3, 2]], "y2 <= y1"),
        ([[1, 2, 9, 4]], "outside the 8x6 image"),
        ([[-1, 2, 3, 4]], "outside"),
    ],
)
def test_bad_boxes_name_the_sample(boxes, message):
    with pytest.raises(ValueError, match=message) as error:
        make(boxes)
    assert "'s7'" in str(error.value)


def test_bad_mask_and_image_are_rejected():
    with pytest.raises(ValueError, match="mask shape"):
        make([[0, 0, 1, 1]], np.zeros((8, 6), dtype=bool))
    with pytest.raises(ValueError, match="dtype"):
        make([[0, 0, 1, 1]], np.zeros((6, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="mode is 'L'"):
        make([[0, 0, 1, 1]], mode="L")
    with pytest.raises(ValueError, match="phrase"):
        Sample("s7", Image.new("RGB", (4, 4)), " ", [[0, 0, 1, 1]])
