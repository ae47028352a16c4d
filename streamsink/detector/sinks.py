"""Sink embeddings: the input vectors placed at the sink positions of the prompt.

A sink is one position in the text sequence whose *input* embedding (the
vector BERT would read from its word-embedding table) is chosen by us; BERT
then adds its own position and token-type embeddings and LayerNorm, so the
sink goes through the model's own embedding path and no weight changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from streamsink.settings import SINK_INITS, check_choice

BRACKETS = "[()]"


def sink_embeddings(
    word_embeddings: torch.Tensor,
    count: int,
    init: str = "mean",
    *,
    tokenize: Callable[[str], list[int]] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Return (count, hidden) input embeddings for `count` sinks.

    word_embeddings: (vocab, hidden), BERT's word-embedding table.
    "mean": the mean row of the table, a token that says nothing.
    "random": normal noise with the table's own std, one vector per sink,
        seeded so runs repeat.
    "brackets": the mean of the word embeddings of the pieces of "[()]"
        (needs `tokenize`). The paper embeds that string; averaging its pieces
        in input space keeps each sink one position, inside the distribution
        BERT's embedding LayerNorm was trained on, and costs no extra tokens.
    "mean" and "brackets" give identical sinks; they still add up, since
    softmax mass over N equal keys is N times that of one.
    """
    import torch

    check_choice("sink_init", init, SINK_INITS)
    if count < 0:
        raise ValueError(f"sinks must be >= 0, got {count}")
    table = word_embeddings.detach().float()
    hidden = table.shape[1]
    if init == "mean":
        vector = table.mean(0)
    elif init == "brackets":
        if tokenize is None:
            raise ValueError('sink_init="brackets" needs the tokenizer')
        ids = torch.as_tensor(tokenize(BRACKETS), dtype=torch.long, device=table.device)
        vector = table[ids].mean(0)
    else:
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(count, hidden, generator=generator)
        return (noise * table.std()).to(word_embeddings)
    return vector.expand(count, hidden).clone().to(word_embeddings)
