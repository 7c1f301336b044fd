import pytest
from PIL import Image

from qgnb.data import load_flickr30k_entities

XML = """<annotation>
  <filename>{id}.jpg</filename>
  <size><width>50</width><height>40</height><depth>3</depth></size>
  {objects}
</annotation>
"""
BOX = (
    "<object><name>{names}</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax>"
    "<ymax>{}</ymax></bndbox></object>"
)
NO_BOX = "<object><name>{}</name><nobndbox>{}</nobndbox><scene>{}</scene></object>"
SENTENCES_1001 = (
    "[/EN#5/people Two men] hold [/EN#6/other a sign] in [/EN#8/scene a park] .\n"
    "[/EN#7/other/clothing The red sign] , [/EN#9/people a woman] and "
    "[/EN#0/notvisual each other] near [/EN#12/animals a dog] .\n"
)


def box(names, xmin, ymin, xmax, ymax):
    return BOX.format(xmin, ymin, xmax, ymax, names="</name><name>".join(names))


def write_image(root, image_id, objects, sentences, size=(50, 40)):
    (root / "Annotations" / f"{image_id}.xml").write_text(
        XML.format(id=image_id, objects="\n  ".join(objects))
    )
    (root / "Sentences" / f"{image_id}.txt").write_text(sentences)
    Image.new("RGB", size, "white").save(root / "flickr30k-images" / f"{image_id}.jpg")


@pytest.fixture
def root(tmp_path):
    for folder in ("Annotations", "Sentences", "flickr30k-images"):
        (tmp_path / folder).mkdir()
    objects = [
        box(["5"], 1, 2, 10, 20),
        box(["5"], 21, 1, 30, 40),
        box(["6", "7"], 41, 11, 50, 15),
        NO_BOX.format(8, 0, 1),
        NO_BOX.format(9, 1, 0),
    ]
    write_image(tmp_path, "1001", objects, SENTENCES_1001)
    write_image(tmp_path, "1002", [box(["3"], 1, 1, 50, 40)], "[/EN#3/other A kite] .\n")
    (tmp_path / "test.txt").write_text("1001\n1002\n")
    return tmp_path


def test_one_sample_per_boxed_phrase_with_all_chain_boxes(root):
    data = load_flickr30k_entities(root, "test", progress=False)
    assert [s.phrase for s in data] == ["Two men", "a sign", "The red sign", "A kite"]
    assert data[0].boxes == [[0.0, 1.0, 10.0, 20.0], [20.0, 0.0, 30.0, 40.0]]
    assert data[1].boxes == data[2].boxes == [[40.0, 10.0, 50.0, 15.0]]
    assert data[3].boxes == [[0.0, 0.0, 50.0, 40.0]]
    assert data[1].meta["sentence"] == "Two men hold a sign in a park ."
    assert data[1].meta["first_word_index"] == 3 and data[1].meta["entity_id"] == "6"
    assert data[2].meta["phrase_types"] == ["other", "clothing"]
    assert data[2].id == "flickr30k_entities/1001/1/0" and data[3].meta["image_id"] == "1002"
    assert data[0].image.size == (50, 40)


def test_phrases_without_boxes_are_skipped_and_counted(root):
    skipped = load_flickr30k_entities(root).skipped
    assert skipped == {"notvisual": 1, "scene": 1, "nobndbox": 1, "unannotated": 1,
                       "bad_box": 0}


def test_unknown_split_and_missing_files(root):
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_flickr30k_entities(root, "dev")
    with pytest.raises(FileNotFoundError, match="val.txt"):
        load_flickr30k_entities(root, "val")
    (root / "Sentences" / "1002.txt").unlink()
    with pytest.raises(FileNotFoundError, match="1002.txt"):
        load_flickr30k_entities(root)


@pytest.mark.parametrize("corners", [(1, 1, 60, 40), (1, 5, 50, 4), (9, 1, 8, 40)])
def test_degenerate_box_in_the_data_is_skipped_and_counted_or_raised(root, corners):
    # Outside the 50x40 image, zero height (ymax = ymin - 1), inverted: the kite's phrase (its
    # chain's only box) is left out and counted; 1001's phrases all load.
    write_image(root, "1002", [box(["3"], *corners)], "[/EN#3/other A kite] .\n")
    data = load_flickr30k_entities(root, progress=False)
    assert [s.phrase for s in data] == ["Two men", "a sign", "The red sign"]
    assert data.skipped["bad_box"] == 1 and data.skipped["unannotated"] == 1
    with pytest.raises(ValueError, match=r"1002.xml: object 0 \(entity 3\): box .*"
                       r"(outside the 50x40|empty or inverted)"):
        load_flickr30k_entities(root, bad_boxes="raise")


def test_one_bad_box_of_a_chain_leaves_out_the_chains_phrases(root):
    # Chain 5 ("Two men") has two boxes; with one degenerate, its region would be incomplete.
    objects = [box(["5"], 1, 2, 10, 20), box(["5"], 21, 1, 20, 40), box(["6", "7"], 41, 11, 50, 15)]
    write_image(root, "1001", objects, SENTENCES_1001)
    data = load_flickr30k_entities(root, progress=False)
    assert [s.phrase for s in data] == ["a sign", "The red sign", "A kite"]
    assert data.skipped["bad_box"] == 1


def test_malformed_files_are_named(root):
    (root / "Sentences" / "1002.txt").write_bytes(b"[/EN#3/other A \xe9kite] .\n")
    with pytest.raises(ValueError, match=r"1002.txt: not UTF-8 text at byte 15"):
        load_flickr30k_entities(root, progress=False)
    write_image(root, "1002", [box(["3"], 1, 1, "5.5", 5)], "[/EN#3/other A kite] .\n")
    with pytest.raises(ValueError, match=r"1002.xml: object 0 \(entity 3\): <bndbox> needs "
                       "integer"):
        load_flickr30k_entities(root, progress=False)
    (root / "Annotations" / "1002.xml").write_text(
        XML.format(id="1002", objects="").replace("<width>50</width>", "<width>wide</width>"))
    with pytest.raises(ValueError, match=r"1002.xml: missing or malformed <size>"):
        load_flickr30k_entities(root, progress=False)


def test_truncated_jpeg_names_path_and_sample(root):
    image = root / "flickr30k-images" / "1002.jpg"
    image.write_bytes(image.read_bytes()[:200])
    data = load_flickr30k_entities(root, progress=False)
    with pytest.raises(ValueError, match=r"1002.txt: line 1 phrase 0 \(entity 3\): sample "
                       r"'flickr30k_entities/1002/0/0': image .*1002\.jpg cannot be read"):
        data[3]


def test_malformed_sentence_and_xml_are_named(root):
    write_image(root, "1002", [box(["3"], 1, 1, 5, 5)], "A [/EN#3 kite] .\n")
    with pytest.raises(ValueError, match="1002.txt: line 1: malformed phrase"):
        load_flickr30k_entities(root)
    (root / "Annotations" / "1002.xml").write_text("<annotation><size>")
    with pytest.raises(ValueError, match="1002.xml: not valid XML"):
        load_flickr30k_entities(root)


def test_image_whose_size_disagrees_with_the_xml_fails_on_access(root):
    write_image(root, "1002", [box(["3"], 1, 1, 5, 5)], "[/EN#3/other A kite] .\n", (30, 30))
    data = load_flickr30k_entities(root)
    with pytest.raises(ValueError, match="1002.jpg is 30x30, but the annotation says 50x40"):
        data[3]
