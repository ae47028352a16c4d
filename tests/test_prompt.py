"""Prompt parsing and the token layout of classes and sinks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamsink.detector.prompt import (
    CLS_ID,
    DOT_ID,
    MAX_TEXT_LEN,
    SEP_ID,
    SINK_PLACEHOLDER_ID,
    build_layout,
    parse_classes,
    text_masks,
)
from streamsink.errors import PromptError

WORDS = {"dog": [20], "tractor": [22], "red": [40], "car": [23], "big": [50]}


def tokenize(name: str) -> list[int]:
    """Stand-in tokenizer: one id per known word, 3 letters-ids per unknown word."""
    ids: list[int] = []
    for word in name.lower().split():
        ids += WORDS.get(word, [200, 201, 202])
    return ids


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("dog,tractor", ("dog", "tractor")),
        (" dog ,  tractor , ", ("dog", "tractor")),
        ("Dog,dog,DOG", ("Dog",)),
        (["red  car", "dog."], ("red car", "dog")),
        ("a.b", ("a b",)),
    ],
)
def test_parse_classes(prompt, expected):
    assert parse_classes(prompt) == expected


@pytest.mark.parametrize("prompt", ["", " , ,", [], ["..."]])
def test_parse_classes_empty_is_an_error(prompt):
    with pytest.raises(PromptError, match="names no class"):
        parse_classes(prompt)


def test_parse_classes_rejects_non_strings():
    with pytest.raises(PromptError, match="must be strings"):
        parse_classes(["dog", 3])


def test_layout_without_sinks_is_the_processor_text():
    layout = build_layout(("dog", "red car"), tokenize)
    assert layout.input_ids.tolist() == [CLS_ID, 20, DOT_ID, 40, 23, DOT_ID, SEP_ID]
    assert layout.class_spans == ((1, 2), (3, 5))
    assert layout.num_sinks == 0
    assert layout.position_ids.tolist() == [0, 0, 1, 0, 1, 2, 0]


def test_sinks_are_one_token_phrases_after_the_classes():
    base = build_layout(("dog", "red car"), tokenize)
    layout = build_layout(("dog", "red car"), tokenize, sinks=3)
    assert layout.num_tokens == base.num_tokens + 2 * 3
    assert layout.input_ids[: base.num_tokens - 1].tolist() == base.input_ids[:-1].tolist()
    assert layout.class_spans == base.class_spans
    assert layout.sink_positions.tolist() == [6, 8, 10]
    assert (layout.input_ids[layout.sink_positions] == SINK_PLACEHOLDER_ID).all()
    assert (layout.input_ids[layout.sink_positions + 1] == DOT_ID).all()
    assert layout.input_ids[-1] == SEP_ID
    for position in layout.sink_positions:
        assert layout.position_ids[position] == 0
        assert layout.self_attention_mask[position].sum() == 2  # itself and its "."
    # real classes never see a sink inside BERT
    assert not layout.self_attention_mask[:6][:, layout.sink_positions].any()


def test_phrase_map_averages_class_tokens_and_picks_sinks():
    layout = build_layout(("dog", "red car"), tokenize, sinks=2)
    rows = layout.phrase_map()
    assert rows.shape == (4, layout.num_tokens)
    np.testing.assert_allclose(rows.sum(1), 1.0)
    np.testing.assert_allclose(rows[1, 3:5], 0.5)
    assert rows[2, layout.sink_positions[0]] == 1 and rows[3, layout.sink_positions[1]] == 1
    delimiters = np.isin(layout.input_ids, [CLS_ID, SEP_ID, DOT_ID])
    assert not rows[:, delimiters].any()


def test_over_long_prompt_names_the_limit_and_the_need():
    classes = tuple(f"class{i}" for i in range(70))  # 70 * (3 + 1) + 2 = 282 tokens
    with pytest.raises(PromptError, match=r"needs 282 text tokens .* at most 256"):
        build_layout(classes, tokenize)
    with pytest.raises(ValueError, match="256"):
        build_layout(classes[:60], tokenize, sinks=16)  # 242 + 32 = 274


def test_prompt_exactly_at_the_limit_fits():
    classes = tuple(f"x{i}" for i in range(63))  # 63 * 4 + 2 = 254
    layout = build_layout(classes, tokenize, sinks=1)
    assert layout.num_tokens == MAX_TEXT_LEN


def test_class_without_tokens_is_an_error():
    with pytest.raises(PromptError, match="tokenizes to nothing"):
        build_layout(("dog", "zz"), lambda name: [] if name == "zz" else [20])


def test_negative_sinks_is_an_error():
    with pytest.raises(ValueError, match="sinks must be >= 0"):
        build_layout(("dog",), tokenize, sinks=-1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([CLS_ID, SEP_ID, DOT_ID, 1029, 7, 8, 9, SINK_PLACEHOLDER_ID]), min_size=1, max_size=24))
def test_text_masks_match_transformers(ids):
    import torch
    from transformers.models.grounding_dino.modeling_grounding_dino import (
        SPECIAL_TOKENS,
        generate_masks_with_special_tokens_and_transfer_map,
    )

    expected_mask, expected_positions = generate_masks_with_special_tokens_and_transfer_map(
        torch.tensor([ids]), torch.tensor(SPECIAL_TOKENS)
    )
    mask, positions = text_masks(np.array(ids))
    assert np.array_equal(mask, expected_mask[0].numpy())
    assert np.array_equal(positions, expected_positions[0].numpy())
