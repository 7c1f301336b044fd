"""Flickr30k Entities: ``Annotations/*.xml`` boxes and ``Sentences/*.txt`` phrase chains."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from qgnb.data.records import (
    DegenerateBox,
    Record,
    RecordDataset,
    check_bad_boxes,
    checked_boxes,
    read_text,
    require_file,
)

SPLITS = ("train", "val", "test")
SKIP_REASONS = ("notvisual", "scene", "nobndbox", "unannotated", "bad_box")
# One annotated phrase: "[/EN#18/people/other A man]" (chain id, types, words).
_PHRASE = re.compile(r"\[/EN#(\d+)((?:/[^\s/\]]+)+) ([^\]]+)\]")


@dataclass
class _Boxes:
    """The boxes of one image's XML, per entity chain id, its scene/nobndbox flags, and the
    chains with a degenerate box (``bad``)."""

    size: tuple[int, int]
    boxes: dict[str, list[list[float]]] = field(default_factory=dict)
    scene: set[str] = field(default_factory=set)
    nobndbox: set[str] = field(default_factory=set)
    bad: set[str] = field(default_factory=set)


def _flag(element: ElementTree.Element, tag: str, source: str) -> bool:
    text = element.findtext(tag)
    if text is None:
        return False
    try:
        return int(text) > 0
    except ValueError:
        raise ValueError(f"{source}: <{tag}> is {text!r}, expected an integer") from None


def _read_boxes(path: Path, bad_boxes: str) -> _Boxes:
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path}: not valid XML ({error})") from error
    try:
        size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
    except (TypeError, ValueError):
        raise ValueError(f"{path}: missing or malformed <size> width/height") from None
    parsed = _Boxes(size)
    for k, obj in enumerate(root.iter("object")):
        names = [name.text.strip() for name in obj.findall("name") if name.text]
        source = f"{path}: object {k} (entity {', '.join(names) or '?'})"
        if not names:
            raise ValueError(f"{source}: has no <name>")
        box = obj.find("bndbox")
        if box is None:
            for name in names:
                if _flag(obj, "scene", source):
                    parsed.scene.add(name)
                if _flag(obj, "nobndbox", source):
                    parsed.nobndbox.add(name)
            continue
        try:
            xmin, ymin, xmax, ymax = (
                int(box.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")
            )
        except (TypeError, ValueError):
            raise ValueError(f"{source}: <bndbox> needs integer xmin, ymin, xmax, ymax") from None
        # 1-based inclusive pixel indices -> continuous xyxy.
        try:
            (checked,) = checked_boxes([[xmin - 1, ymin - 1, xmax, ymax]], size, source)
        except DegenerateBox:
            if bad_boxes == "raise":
                raise
            parsed.bad.update(names)
            continue
        for name in names:
            parsed.boxes.setdefault(name, []).append(checked)
    return parsed


def _phrases(line: str, source: str) -> tuple[str, list[tuple[str, list[str], str, int]]]:
    """The plain sentence, and (chain id, types, phrase, first word index) per phrase."""
    found = list(_PHRASE.finditer(line))
    if len(found) != line.count("[/EN#"):
        raise ValueError(f"{source}: malformed phrase annotation in {line.strip()!r}")
    words: list[str] = []
    phrases = []
    last = 0
    for match in found:
        words += line[last : match.start()].split()
        chain, types, text = match.group(1), match.group(2).strip("/").split("/"), match.group(3)
        phrases.append((chain, types, text.strip(), len(words)))
        words += text.split()
        last = match.end()
    words += line[last:].split()
    return " ".join(words), phrases


def load_flickr30k_entities(
    root: str | Path, split: str = "test", progress: bool = True, bad_boxes: str = "skip"
) -> RecordDataset:
    """Load a Flickr30k Entities split: one sample per phrase occurrence that has a box.

    ``root`` holds ``<split>.txt`` (one image id per line), ``Annotations/<id>.xml``,
    ``Sentences/<id>.txt`` and ``flickr30k-images/<id>.jpg``. An XML ``bndbox``'s ``xmin ymin
    xmax ymax`` are 1-based inclusive pixel indices, so the box is ``[xmin-1, ymin-1, xmax,
    ymax]``. A phrase ``[/EN#<chain>/<types> words]`` keeps every box of its chain (an XML
    object may name several chains). Phrases of chain 0 (``notvisual``), of chains marked
    only ``scene`` or only ``nobndbox``, and of chains with no XML object at all are skipped
    and counted in ``dataset.skipped`` under ``"notvisual"``, ``"scene"``, ``"nobndbox"`` and
    ``"unannotated"``. ``meta`` carries the plain ``sentence``, the phrase's
    ``first_word_index`` in it, ``entity_id`` and ``phrase_types``. ``progress`` shows a
    progress bar over the split's images.

    A box that is malformed in the data set itself (``xmax < xmin``, ``ymax < ymin``, or
    outside its image) leaves out every phrase of its chains (their region would be
    incomplete), counted in ``dataset.skipped["bad_box"]``; ``bad_boxes="raise"`` raises
    instead. Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file
    and the record for an unknown split, malformed XML, a sentence file that is not UTF-8 or
    holds a malformed phrase annotation, or a non-integer coordinate.

    Example (a one-image data set written on the spot; on the real one, ``root`` is where
    the annotations and images were unpacked):
        >>> import tempfile; from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for folder in ("Annotations", "Sentences", "flickr30k-images"):
        ...     (root / folder).mkdir()
        >>> _ = (root / "test.txt").write_text("1\\n")
        >>> Image.new("RGB", (20, 10)).save(root / "flickr30k-images" / "1.jpg")
        >>> _ = (root / "Sentences" / "1.txt").write_text(
        ...     "[/EN#5/people A man] sits on [/EN#0/notvisual it] .\\n")
        >>> _ = (root / "Annotations" / "1.xml").write_text(
        ...     "<annotation><size><width>20</width><height>10</height></size>"
        ...     "<object><name>5</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
        ...     "<xmax>10</xmax><ymax>5</ymax></bndbox></object></annotation>")
        >>> data = load_flickr30k_entities(root, progress=False)
        >>> len(data), data[0].phrase, data[0].boxes, data.skipped["notvisual"]
        (1, 'A man', [[0.0, 0.0, 10.0, 5.0]], 1)
    """
    if split not in SPLITS:
        raise ValueError(f"load_flickr30k_entities: unknown split {split!r}; expected {SPLITS}")
    check_bad_boxes(bad_boxes, "load_flickr30k_entities")
    root = Path(root)
    id_list = read_text(root / f"{split}.txt", f"Flickr30k Entities {split} id list")
    image_ids = [line.strip() for line in id_list.splitlines() if line.strip()]
    records: list[Record] = []
    skipped: Counter[str] = Counter({reason: 0 for reason in SKIP_REASONS})
    for image_id in tqdm(image_ids, desc=f"Flickr30k Entities {split}", disable=not progress):
        xml_path = require_file(root / "Annotations" / f"{image_id}.xml", "annotation")
        text_path = require_file(root / "Sentences" / f"{image_id}.txt", "sentences")
        image_path = require_file(root / "flickr30k-images" / f"{image_id}.jpg", "image")
        annotation = _read_boxes(xml_path, bad_boxes)
        lines = [line for line in read_text(text_path, "sentences").splitlines() if line]
        for s, line in enumerate(lines):
            sentence, phrases = _phrases(line, f"{text_path}: line {s + 1}")
            for p, (chain, types, phrase, first_word) in enumerate(phrases):
                if chain == "0":
                    skipped["notvisual"] += 1
                    continue
                if chain in annotation.bad:
                    skipped["bad_box"] += 1
                    continue
                if chain not in annotation.boxes:
                    reason = (
                        "scene"
                        if chain in annotation.scene
                        else "nobndbox"
                        if chain in annotation.nobndbox
                        else "unannotated"
                    )
                    skipped[reason] += 1
                    continue
                meta = {
                    "dataset": "flickr30k_entities",
                    "split": split,
                    "image_id": image_id,
                    "image_size": annotation.size,
                    "sentence": sentence,
                    "first_word_index": first_word,
                    "entity_id": chain,
                    "phrase_types": types,
                }
                records.append(
                    Record(
                        f"flickr30k_entities/{image_id}/{s}/{p}",
                        image_path,
                        phrase,
                        annotation.boxes[chain],
                        annotation.size,
                        f"{text_path}: line {s + 1} phrase {p} (entity {chain})",
                        meta,
                    )
                )
    return RecordDataset(records, dict(skipped))
