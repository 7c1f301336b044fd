"""A word-level tokenizer for the synthetic benchmark's closed vocabulary.

Each word of `qgnb.data.SHAPES_VOCABULARY` is one token (a WordPiece model whose vocabulary
holds whole words only), framed by BERT's [CLS] ... [SEP], so phrases tokenize without
sub-words and the zoo's models need no downloaded tokenizer files.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import BertTokenizer

from qgnb.zoo.configs import MAX_PHRASE_TOKENS

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def word_tokenizer(words: Iterable[str]) -> BertTokenizer:
    """A BERT tokenizer whose vocabulary is the special tokens followed by ``words``.

    >>> tok = word_tokenizer(["the", "red", "circle"])
    >>> tok("the red circle")["input_ids"]
    [2, 5, 6, 7, 3]
    """
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for word in words:
        word = word.lower()
        if not word or " " in word:
            raise ValueError(f"vocabulary entry {word!r} is not a single word")
        vocab.setdefault(word, len(vocab))
    return BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=MAX_PHRASE_TOKENS)


def shapes_tokenizer() -> BertTokenizer:
    """The tokenizer for `qgnb.data.SHAPES_VOCABULARY` (every zoo model uses it).

    >>> shapes_tokenizer().unk_token_id
    1
    """
    from qgnb.data import SHAPES_VOCABULARY

    return word_tokenizer(SHAPES_VOCABULARY)
