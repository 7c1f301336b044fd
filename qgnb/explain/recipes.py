"""Named GradCAM recipes: layer, token rows, first token, caption cleaning and input size, fixed
together the way the code behind a published number fixed them.

A cross-attention GradCAM map depends on five choices that papers rarely print side by side;
a `Recipe` holds all five and says where they come from. The named ones:

- ``"lavis"``: LAVIS' BLIP text localization (the library Q-GroundCAM ran BLIP through).
  ``compute_gradcam(model, image, text, tokens, block_num=7)`` in LAVIS'
  ``examples/blip_text_localization.ipynb`` (``lavis/models/pnp_vqa_models/pnp_vqa.py`` uses the
  same ``block_num=7``): text layer index 7, i.e. the 8th of BLIP's 12 text layers; the ITM
  forward replaces the first token by ``[ENC]`` (``BlipITM.forward``); the map kept is
  ``gradcam[1]``, the average over the word rows (``1 .. length-2``: no [ENC], no [SEP]);
  captions go through ``BlipCaptionProcessor`` (lower case, ``.!"()*#:;~`` to spaces, spaces
  squeezed, at most 50 words) and the tokenizer truncates at ``max_txt_len=35`` tokens; images
  through ``blip_image_eval`` (bicubic resize to 384 x 384, CLIP normalisation). LAVIS' own
  Streamlit app (``app/text_localization.py``) defaults to index 6 instead; the example
  notebook and PnP-VQA use 7, and that is the one taken here.
- ``"amc"``: ALBEF's and AMC's grounding evaluation (``Grounding.py`` in ALBEF,
  ``grounding_eval_singlegpu.py`` in AMC): ``--block_num 8`` (the 9th text layer, the third of
  ALBEF's six cross-attention layers), every token row averaged (``gradcam.mean(1).mean(1)``,
  [CLS] and [SEP] included), [CLS] first as BERT tokenises, captions through ALBEF's
  ``pre_caption`` (lower case, ``,.'!?"()*#:;~`` removed, ``-`` and ``/`` to spaces, at most 30
  words, the grounding data set's default), images 384 x 384 bicubic with CLIP normalisation.
- ``"zoo"``: qgnb's own small models. Layer and token rows are not fixed here: the zoo's
  explainer passes them from its own configuration (``qgnb.zoo``). Phrases as given, [CLS]
  first as `transformers` feeds it, the model's own input size.

Explicit arguments (``layer=``, ``tokens=``, ...) override a recipe's choice; the explainer's
``config`` records the recipe's name and every resolved value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CAPTION_STYLES = ("lavis", "albef")


def lavis_caption(caption: str, max_words: int = 50) -> str:
    """LAVIS' ``BlipCaptionProcessor.pre_caption``: lower case, ``.!"()*#:;~`` become spaces,
    runs of spaces collapse, at most ``max_words`` words.

    >>> lavis_caption("The man (left), holding a BAT.")
    'the man left , holding a bat'
    """
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption)
    caption = caption.rstrip("\n").strip(" ")
    words = caption.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else caption


def albef_caption(caption: str, max_words: int = 30) -> str:
    """ALBEF's (and AMC's) ``dataset.utils.pre_caption``: lower case, ``,.'!?"()*#:;~``
    removed, ``-`` and ``/`` become spaces, ``<person>`` becomes ``person``, spaces collapse,
    at most ``max_words`` words.

    >>> albef_caption("Man's left-hand bat, on the <person>'s side!")
    'mans left hand bat on the persons side'
    """
    caption = re.sub(r"([,.'!?\"()*#:;~])", "", caption.lower())
    caption = caption.replace("-", " ").replace("/", " ").replace("<person>", "person")
    caption = re.sub(r"\s{2,}", " ", caption)
    caption = caption.rstrip("\n").strip(" ")
    words = caption.split(" ")
    return " ".join(words[:max_words]) if len(words) > max_words else caption


@dataclass(frozen=True)
class Recipe:
    """One way to draw cross-attention GradCAM maps, fixed as a whole (module docstring).

    ``layer``/``tokens`` ``None``: the caller must give them. ``first_token``: the token that
    replaces the first one (``None``: keep the tokenizer's [CLS]). ``captions``: ``"lavis"``,
    ``"albef"`` or ``None`` (phrases as given), cut at ``max_words`` words; ``max_tokens``:
    tokenizer truncation (``None``: the tokenizer's own limit). ``image_size``: the square
    input side the recipe's code resized to (``None``: the model's own).

    >>> RECIPES["lavis"].layer, RECIPES["lavis"].tokens, RECIPES["lavis"].first_token
    (7, 'words', '[ENC]')
    """

    name: str
    layer: int | None
    tokens: str | None
    first_token: str | None
    captions: str | None
    max_words: int | None
    max_tokens: int | None
    image_size: int | None
    source: str

    def __post_init__(self) -> None:
        if self.captions is not None and self.captions not in CAPTION_STYLES:
            raise ValueError(f"recipe {self.name!r}: captions must be one of {CAPTION_STYLES} "
                             f"or None, got {self.captions!r}")

    def with_overrides(self, **overrides: Any) -> Recipe:
        """This recipe with the given fields replaced (``None`` values leave a field alone);
        raises if ``layer`` or ``tokens`` stays unset.

        >>> RECIPES["lavis"].with_overrides(layer=6, tokens=None).layer
        6
        >>> RECIPES["zoo"].with_overrides(tokens="all")
        Traceback (most recent call last):
        ...
        ValueError: recipe 'zoo' leaves layer to the caller: pass layer=...
        """
        unknown = set(overrides) - {field.name for field in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"recipe {self.name!r} has no field(s) {sorted(unknown)}")
        recipe = dataclasses.replace(self, **{key: value for key, value in overrides.items()
                                              if value is not None})
        for required in ("layer", "tokens"):
            if getattr(recipe, required) is None:
                raise ValueError(f"recipe {self.name!r} leaves {required} to the caller: pass "
                                 f"{required}=...")
        return recipe

    def clean(self, phrases: Sequence[str]) -> list[str]:
        """The phrases as the recipe's code cleaned them; a phrase left empty is an error.

        >>> RECIPES["lavis"].clean(["A dog."])
        ['a dog']
        """
        if self.captions is None:
            return list(phrases)
        style = lavis_caption if self.captions == "lavis" else albef_caption
        cleaned = [style(phrase, self.max_words) if self.max_words else style(phrase)
                   for phrase in phrases]
        for i, (raw, text) in enumerate(zip(phrases, cleaned, strict=True)):
            if not text:
                raise ValueError(f"phrase {i}: {raw!r} is empty after the {self.captions!r} "
                                 "caption cleaning")
        return cleaned

    def config(self) -> dict[str, Any]:
        """The recipe's name and values as plain JSON-able values (no ``source`` text).

        >>> RECIPES["amc"].config()["layer"]
        8
        """
        values = dataclasses.asdict(self)
        values.pop("source")
        return {"recipe": values.pop("name"), **values}


LAVIS = Recipe(
    name="lavis", layer=7, tokens="words", first_token="[ENC]", captions="lavis", max_words=50,
    max_tokens=35, image_size=384,
    source="LAVIS examples/blip_text_localization.ipynb: compute_gradcam(..., block_num=7), "
           "gradcam[1]; BlipITM.forward ([ENC] first, max_txt_len=35); BlipCaptionProcessor "
           "(max_words=50); blip_image_eval (384)")
AMC = Recipe(
    name="amc", layer=8, tokens="all", first_token=None, captions="albef", max_words=30,
    max_tokens=None, image_size=384,
    source="AMC grounding_eval_singlegpu.py and ALBEF Grounding.py: --block_num 8, "
           "gradcam.mean(1).mean(1); dataset.utils.pre_caption (max_words=30); image_res 384")
ZOO = Recipe(
    name="zoo", layer=None, tokens=None, first_token=None, captions=None, max_words=None,
    max_tokens=None, image_size=None,
    source="qgnb.zoo: layer and token rows from the zoo explainer's configuration; phrases "
           "as generated; the processor's [CLS] first; the model's input size")
RECIPES = {recipe.name: recipe for recipe in (LAVIS, AMC, ZOO)}


def get_recipe(recipe: str | Recipe) -> Recipe:
    """A recipe by name (or the `Recipe` itself).

    >>> get_recipe("lavis").max_tokens
    35
    >>> get_recipe("paper")
    Traceback (most recent call last):
    ...
    ValueError: unknown recipe 'paper'; named recipes: ['amc', 'lavis', 'zoo']
    """
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; named recipes: {sorted(RECIPES)}")
    return RECIPES[recipe]
