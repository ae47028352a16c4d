"""Prompts: the class names a user typed, cleaned, checked and laid out as model text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from streamsink.errors import PromptError


def parse_classes(prompt: str | Sequence[str]) -> tuple[str, ...]:
    """Split `"dog, tractor"` (or take a list) into unique, stripped class names.

    Grounding DINO separates phrases with ".", so a class may not contain one;
    an empty result (`" , ,"`) is an error rather than a silent no-op run.
    """
    items = prompt.split(",") if isinstance(prompt, str) else list(prompt)
    classes: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise PromptError(f"prompt classes must be strings, got {type(item).__name__}")
        name = " ".join(item.replace(".", " ").split())
        if name and name.lower() not in (c.lower() for c in classes):
            classes.append(name)
    if not classes:
        raise PromptError(f"prompt names no class: {prompt!r}; pass e.g. --prompt \"dog,tractor\"")
    return tuple(classes)


# Grounding DINO hard-codes bert-base-uncased ids for its delimiters
# (GroundingDinoModel.special_tokens); every checkpoint of both families uses them.
CLS_ID, SEP_ID, DOT_ID, QUESTION_ID = 101, 102, 1012, 1029
DELIMITER_IDS = (CLS_ID, SEP_ID, DOT_ID, QUESTION_ID)
# Placeholder id at sink positions: any non-delimiter id works, because the
# sink's input embedding replaces the word embedding of this id.
SINK_PLACEHOLDER_ID = 103  # [MASK]
MAX_TEXT_LEN = 256


@dataclass(frozen=True)
class TextLayout:
    """Where every class and sink sits in the text sequence the model reads.

    `[CLS] c1 tokens . c2 tokens . ... sink . sink . ... [SEP]`: the real
    classes come first with exactly the ids the stock processor gives
    `"c1. c2."`, then each sink is its own one-token phrase closed by "."
    (2 positions per sink), so sinks are extra classes in the paper's sense.

    input_ids: (L,) int64, sink positions hold SINK_PLACEHOLDER_ID.
    class_spans: per class, the [start, end) token positions of its name
        (the closing "." excluded), the tokens its score averages.
    sink_positions: (N,) int64 positions of the sink tokens.
    position_ids: (L,) int64, restarting after every delimiter.
    self_attention_mask: (L, L) bool, True where token i may attend to token j
        inside BERT and the text enhancer (block-diagonal per phrase).
    """

    classes: tuple[str, ...]
    input_ids: np.ndarray
    class_spans: tuple[tuple[int, int], ...]
    sink_positions: np.ndarray
    position_ids: np.ndarray
    self_attention_mask: np.ndarray

    @property
    def num_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def num_sinks(self) -> int:
        return len(self.sink_positions)

    def phrase_map(self) -> np.ndarray:
        """(num_classes + num_sinks, L) float32 rows that average each phrase's token probabilities.

        The original Grounding DINO evaluation ("positive map") scores a class
        by the mean of its tokens' sigmoid probabilities; a sink's row selects
        its one token. Delimiters, [CLS] and [SEP] belong to no row.
        """
        rows = np.zeros((len(self.classes) + self.num_sinks, self.num_tokens), np.float32)
        for i, (start, end) in enumerate(self.class_spans):
            rows[i, start:end] = 1.0 / (end - start)
        rows[np.arange(len(self.classes), len(rows)), self.sink_positions] = 1.0
        return rows


def text_masks(input_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Phrase mask and position ids for one sequence, as Grounding DINO builds them.

    Mirrors transformers' `generate_masks_with_special_tokens_and_transfer_map`
    (checked against it in the tests): a token belongs to the block closed by
    the next delimiter; blocks closed by the first or last token are not
    blocks; position ids count from the previous delimiter.
    """
    ids = np.asarray(input_ids, np.int64)
    n = len(ids)
    special = np.isin(ids, DELIMITER_IDS)
    index = np.arange(n)
    prev = np.maximum.accumulate(np.where(special, index, -1))
    prev = np.concatenate([[-1], prev[:-1]])
    nxt = np.minimum.accumulate(np.where(special, index, n)[::-1])[::-1]
    valid = (nxt != 0) & (nxt != n - 1) & (nxt != n)
    mask = (nxt[:, None] == nxt[None, :]) & valid[None, :]
    mask |= np.eye(n, dtype=bool)
    position_ids = np.where(valid, index - prev - 1, 0).clip(min=0).astype(np.int64)
    return mask, position_ids


def build_layout(
    classes: Sequence[str],
    tokenize: Callable[[str], list[int]],
    *,
    sinks: int = 0,
    max_len: int = MAX_TEXT_LEN,
) -> TextLayout:
    """Lay out classes and sinks as one token sequence and check it fits.

    `tokenize` maps one class name to its word-piece ids without special
    tokens. BERT's basic tokenizer splits on punctuation and spaces, so
    tokenizing classes one by one gives the same ids as the processor's
    `"c1. c2."`. Raises PromptError past `max_len` positions, naming the limit
    and what the prompt needs, rather than letting the model truncate or crash.
    """
    if sinks < 0:
        raise ValueError(f"sinks must be >= 0, got {sinks}")
    classes = tuple(classes)
    ids = [CLS_ID]
    spans = []
    for name in classes:
        tokens = [int(t) for t in tokenize(name)]
        if not tokens or any(t in DELIMITER_IDS for t in tokens):
            raise PromptError(f"class {name!r} tokenizes to nothing usable; use plain words")
        spans.append((len(ids), len(ids) + len(tokens)))
        ids += tokens + [DOT_ID]
    sink_positions = [len(ids) + 2 * i for i in range(sinks)]
    ids += [SINK_PLACEHOLDER_ID, DOT_ID] * sinks + [SEP_ID]
    if len(ids) > max_len:
        raise PromptError(
            f"prompt needs {len(ids)} text tokens ({len(classes)} classes with their '.' delimiters, "
            f"{sinks} sinks at 2 tokens each, [CLS] and [SEP]) but the model reads at most {max_len}; "
            "use fewer or shorter classes or fewer sinks"
        )
    input_ids = np.asarray(ids, np.int64)
    mask, position_ids = text_masks(input_ids)
    return TextLayout(classes, input_ids, tuple(spans), np.asarray(sink_positions, np.int64), position_ids, mask)
