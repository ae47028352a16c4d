"""Tiny random Grounding DINO checkpoints, built offline from configs.

Tests, benchmarks and `make demo` (until the trained demo model exists) need a
checkpoint that loads through the same `from_pretrained` path as a real one,
without the Hugging Face hub. The weights are random, so the boxes are
meaningless; the shapes, the tokenizer and the code paths are real.
"""

from __future__ import annotations

from pathlib import Path

FAMILIES = ("grounding-dino", "mm-grounding-dino")

# Grounding DINO hard-codes bert-base-uncased ids for these tokens when it
# builds its per-phrase text masks, so a small vocabulary must keep them.
SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, ".": 1012, "?": 1029}

WORDS = (
    "a an the of and or with in on at is are this that object thing background "
    "dog cat tractor person car bus truck bicycle bird horse sheep cow bottle chair "
    "circle square triangle star cross ring shape red green blue yellow white black "
    "orange purple small large big"
).split()


def tiny_vocab() -> dict[str, int]:
    """A word-piece vocabulary of 1100 ids that spells any lowercase word.

    Single letters and their "##" continuations mean no ASCII word becomes
    [UNK], so prompts like "zebra" still produce distinct tokens.
    """
    vocab = dict(SPECIAL_IDS)
    pieces = [w for w in WORDS]
    pieces += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces += ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces += [str(d) for d in range(10)] + ["##" + str(d) for d in range(10)]
    pieces += list(",;:!'\"()[]-_/&")
    free = (i for i in range(1, 1100) if i not in vocab.values())
    for piece in dict.fromkeys(pieces):
        vocab[piece] = next(free)
    for i in free:
        vocab[f"[unused{i}]"] = i
    return vocab


def tiny_config(family: str = "grounding-dino", *, d_model: int = 32, layers: int = 2, queries: int = 20):
    """A config small enough to build and run in well under a second on a CPU.

    `d_model` must be divisible by 32: the input projections use GroupNorm(32, d_model).
    """
    from transformers import BertConfig, GroundingDinoConfig, MMGroundingDinoConfig, ResNetConfig

    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    if d_model % 32:
        raise ValueError(f"d_model must be divisible by 32, got {d_model}")
    backbone = ResNetConfig(
        num_channels=3,
        embedding_size=16,
        hidden_sizes=[16, 32, 64, 64],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(
        vocab_size=1100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    config_class = GroundingDinoConfig if family == "grounding-dino" else MMGroundingDinoConfig
    return config_class(
        backbone_config=backbone,
        text_config=text,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=queries,
        num_feature_levels=4,
        encoder_n_points=2,
        decoder_n_points=2,
    )


def build_tiny_checkpoint(
    path: str | Path,
    family: str = "grounding-dino",
    *,
    image_size: int = 224,
    seed: int = 0,
    **config_kwargs,
) -> Path:
    """Save a random tiny checkpoint with its processor to `path` and return it.

    The processor resizes the shortest edge to `image_size`, keeping frames
    small so a test forward pass costs milliseconds.
    """
    import torch
    from transformers import (
        BertTokenizerFast,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        MMGroundingDinoForObjectDetection,
    )

    path = Path(path)
    config = tiny_config(family, **config_kwargs)
    torch.manual_seed(seed)
    model_class = GroundingDinoForObjectDetection if family == "grounding-dino" else MMGroundingDinoForObjectDetection
    model = model_class(config).eval()
    tokenizer = BertTokenizerFast(vocab=tiny_vocab(), do_lower_case=True, model_max_length=256)
    image_processor = GroundingDinoImageProcessorPil(
        size={"shortest_edge": image_size, "longest_edge": image_size * 1333 // 800}
    )
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
