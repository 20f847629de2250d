"""Text as token ids: a word vocabulary built from SST-2's training split, and sentences as fixed-length id rows.

No pretrained tokenizer or embedding can be downloaded here, so the vocabulary is derived, deterministically,
from the data every party holds: the words of SST-2's training split (the GLUE distribution is lower-cased and
tokenized with spaces), most frequent first, ties in code-point order, cut at ``size`` entries including the
two reserved ids (0 padding, 1 unknown word). Anyone with the same file rebuilds the same vocabulary, and its
SHA-256 (over the words, one per line) names it in a model's arguments, so a model and a key made with
another vocabulary are refused rather than silently misread.

A sentence of L tokens is a (1, 1, L) int64 array: text models take the same (C, H, W) form as images, so the
keys, the engine and the prediction API need no second input layout (the API's datatype says INT64).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import UsageError
from .data import ImageData, load_sst2

PAD, UNK = 0, 1
RESERVED = ("[PAD]", "[UNK]")
#: Token rows are this long: SST-2's longest training phrase has 52 words.
DEFAULT_LENGTH = 64
DEFAULT_VOCABULARY = 16_384


def tokenize(sentence: str) -> list[str]:
    """Lower-cased, whitespace-separated words (the GLUE SST-2 files are already tokenized this way)."""
    return sentence.lower().split()


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]  # id -> word; words[0] = "[PAD]", words[1] = "[UNK]"

    def __post_init__(self) -> None:
        if self.words[:2] != RESERVED or len(set(self.words)) != len(self.words):
            raise ValueError("a vocabulary starts with [PAD], [UNK] and holds each word once")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def sha256(self) -> str:
        return hashlib.sha256("\n".join(self.words).encode("utf-8")).hexdigest()

    @property
    def ids(self) -> dict[str, int]:
        return _index(self.words)

    def id_of(self, word: str) -> int:
        """The id of ``word``; a word outside the vocabulary is a usage error (a trigger word must be known)."""
        try:
            return self.ids[word]
        except KeyError:
            raise UsageError(f"{word!r} is not in the vocabulary ({len(self)} words)") from None

    def encode(self, sentence: str, length: int = DEFAULT_LENGTH) -> np.ndarray:
        """(1, 1, length) int64: the sentence's ids, cut to ``length`` words, padded with 0."""
        ids = self.ids
        row = [ids.get(word, UNK) for word in tokenize(sentence)][:length]
        out = np.zeros((1, 1, length), dtype=np.int64)
        out[0, 0, : len(row)] = row
        return out

    def decode(self, row: np.ndarray) -> str:
        return " ".join(self.words[int(i)] for i in np.asarray(row).reshape(-1) if int(i) != PAD)


@lru_cache(maxsize=8)
def _index(words: tuple[str, ...]) -> dict[str, int]:
    return {word: i for i, word in enumerate(words)}


def build_vocabulary(sentences: list[str], size: int = DEFAULT_VOCABULARY) -> Vocabulary:
    """The ``size`` - 2 most frequent words of ``sentences`` (ties in code-point order) after the reserved ids."""
    if size < 3:
        raise UsageError("a vocabulary needs at least one word besides [PAD] and [UNK]")
    counts = Counter(word for sentence in sentences for word in tokenize(sentence))
    for reserved in RESERVED:
        counts.pop(reserved, None)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return Vocabulary(RESERVED + tuple(word for word, _ in ranked[: size - 2]))


@lru_cache(maxsize=4)
def sst2_vocabulary(size: int = DEFAULT_VOCABULARY, data_dir: str | None = None) -> Vocabulary:
    """The vocabulary of SST-2's training split (see the module docstring)."""
    return build_vocabulary(load_sst2("train", data_dir).sentences, size)


def load_sst2_tokens(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    size: int = DEFAULT_VOCABULARY,
    length: int = DEFAULT_LENGTH,
) -> ImageData:
    """SST-2 ``train`` or ``dev`` as (N, 1, 1, length) int64 token rows and (N,) labels (0 negative, 1
    positive), in the file's order. ``dev`` is the labelled held-out split (GLUE's test split has no labels)."""
    if split not in ("train", "dev"):
        raise UsageError(f"SST-2 token data has the labelled splits train and dev, not {split!r}")
    text = load_sst2(split, data_dir)
    vocabulary = sst2_vocabulary(size, None if data_dir is None else str(data_dir))
    rows = np.stack([vocabulary.encode(sentence, length) for sentence in text.sentences])
    assert text.labels is not None
    return ImageData(rows, text.labels, 2, "sst2", split)
