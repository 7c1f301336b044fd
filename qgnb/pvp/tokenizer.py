"""The PVP tokenizer: a word-level vocabulary where every number 0-255 is ONE token.

Whole-number tokens (rather than digit by digit) keep an answer ``[r,g,b]`` at 7 tokens
(``[ r , g , b ]``) instead of up to 13, and coordinates at one token each: shorter sequences,
which is what a CPU budget needs. Words outside the vocabulary become ``<unk>``. Built on the
``tokenizers`` library (``WordLevel`` model, whitespace and punctuation pre-tokenizers).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

from qgnb.pvp.queries import RECONSTRUCT_TASK, SEGMENTATION_TASK, all_cells, location_text

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
FIXED = [RECONSTRUCT_TASK, SEGMENTATION_TASK, "[", "]", ",", ":", "loc", "rgb", "mask"]
NUMBERS = [str(i) for i in range(256)]


class PVPTokenizer:
    """Text <-> token ids for the tiny VLM (wraps a ``tokenizers.Tokenizer``).

    >>> tok = build_tokenizer(["the", "red", "circle"])
    >>> tok.tokens("[reconstruct] loc: [3,12] rgb:")
    ['[reconstruct]', 'loc', ':', '[', '3', ',', '12', ']', 'rgb', ':']
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.token_to_id("<pad>")
        self.bos_id = tokenizer.token_to_id("<bos>")
        self.eos_id = tokenizer.token_to_id("<eos>")
        self.unk_id = tokenizer.token_to_id("<unk>")

    @property
    def number_ids(self) -> list[int]:
        """Ids of the number tokens ``"0"`` .. ``"255"``, in value order."""
        return [self.tokenizer.token_to_id(n) for n in NUMBERS]

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no bos/eos added)."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def tokens(self, text: str) -> list[str]:
        """Token strings of ``text``."""
        return self.tokenizer.encode(text, add_special_tokens=False).tokens

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` up to the first ``<eos>``, tokens joined by single spaces."""
        ids = list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def to_str(self) -> str:
        """The tokenizer as JSON (``tokenizers`` format)."""
        return self.tokenizer.to_str()

    @classmethod
    def from_str(cls, text: str) -> PVPTokenizer:
        """Load a tokenizer saved by ``to_str``."""
        return cls(Tokenizer.from_str(text))


def build_tokenizer(words: Iterable[str], locations: int = 0) -> PVPTokenizer:
    """A tokenizer whose vocabulary is the fixed PVP symbols, numbers 0-255 and ``words``;
    with ``locations``, also one token per location ``[y,x]`` of a ``locations x locations``
    grid (Kosmos-2 style location tokens; the prompts' text is unchanged, and an answer
    ``[r,g,b]`` never matches one). The wired VLM (``model.WiredVLM``) needs them.

    >>> tok = build_tokenizer(["blue"])
    >>> tok.decode(tok.encode("[7,0,255]") + [tok.eos_id, 5])
    '[ 7 , 0 , 255 ]'
    >>> build_tokenizer([], locations=16).tokens("[reconstruct] loc: [3,12] rgb: [3,12,0]")
    ['[reconstruct]', 'loc', ':', '[3,12]', 'rgb', ':', '[', '3', ',', '12', ',', '0', ']']
    """
    splitter = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation("isolated")]
    )
    # Words are split the way text will be ("left-of" -> "left", "-", "of").
    pieces = {p for w in words for p, _ in splitter.pre_tokenize_str(w.lower())}
    vocab: dict[str, int] = {}
    for token in [*SPECIALS, *FIXED, *NUMBERS, *sorted(pieces)]:
        vocab.setdefault(token, len(vocab))
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = splitter
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    # Task tags are added tokens so that the pre-tokenizer does not split their brackets.
    tokenizer.add_tokens([RECONSTRUCT_TASK, SEGMENTATION_TASK])
    tokenizer.add_tokens([location_text(y, x) for y, x in all_cells(locations)])
    return PVPTokenizer(tokenizer)
