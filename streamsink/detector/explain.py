"""Where the first fusion layer's attention goes, without and with sinks.

`streamsink explain` draws, for one image and prompt, each image token's
image-to-text attention onto every prompt class (summed over the class's
tokens) in the first vision-language fusion layer: one column per head, one
row per feature scale, the stock prompt on the left and the sink-extended
prompt on the right, plus the attention the sinks took. It shows the paper's
point directly: without sinks every token's attention must land on some
class, whatever the image holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamsink.errors import SourceError, SourceNotFoundError, WriterError

if TYPE_CHECKING:
    from streamsink.detector.model import SinkDetector

CELL = 72
GAP = 6
LABEL_WIDTH = 120
HEADER = 40
BACKGROUND = 255


@dataclass(frozen=True)
class FusionAttention:
    """First-fusion-layer attention of one image onto one prompt's phrases.

    maps: per class, then (if any) one entry for all sinks together: a list
        over feature levels of (heads, h, w) float32 attention sums.
    share: (phrases, levels, heads) float32 mean attention share per image
        token; summed over phrases plus delimiters it is 1.
    """

    names: tuple[str, ...]
    maps: list[list[np.ndarray]]
    share: np.ndarray


@dataclass(frozen=True)
class ExplainResult:
    """The picture and its numbers.

    figure: (H, W, 3) uint8 RGB.
    sink_share: mean share of the first fusion layer's image-to-text
        attention that went to the sinks (over image tokens, heads and levels).
    sink_share_grid: (levels, heads) the same per feature level and head.
    class_share: class -> (share without sinks, share with sinks).
    """

    figure: np.ndarray
    classes: tuple[str, ...]
    sinks: int
    sink_share: float
    sink_share_grid: np.ndarray
    class_share: dict[str, tuple[float, float]]

    def save(self, path: str | Path) -> Path:
        """Write the figure as PNG (or any format OpenCV knows by the suffix)."""
        import cv2

        path = Path(path)
        if not path.parent.is_dir():
            raise WriterError(f"cannot write {path}: folder {path.parent} does not exist")
        if not cv2.imwrite(str(path), np.ascontiguousarray(self.figure[..., ::-1])):
            raise WriterError(f"cannot write {path}: OpenCV could not encode or save it")
        return path


def fusion_attention(detector: SinkDetector, image: np.ndarray, prompt: str | Sequence[str]) -> FusionAttention:
    """Run one image and collect the first fusion layer's image-to-text attention per phrase."""
    text = detector.encode_prompt(prompt)
    layout = text.layout
    raw = detector.forward(detector.preprocess([image]), prompt, output_attentions=True)
    attention = raw.fusion_attention[0].float().cpu().numpy()  # (heads, image tokens, L), batch of one
    groups = [list(range(start, end)) for start, end in layout.class_spans]
    names = list(layout.classes)
    if layout.num_sinks:
        groups.append(layout.sink_positions.tolist())
        names.append("sinks")
    heads = attention.shape[0]
    maps: list[list[np.ndarray]] = []
    share = np.zeros((len(groups), len(raw.spatial_shapes), heads), np.float32)
    for g, columns in enumerate(groups):
        per_token = attention[:, :, columns].sum(-1)
        levels = []
        start = 0
        for level, (h, w) in enumerate(raw.spatial_shapes):
            block = per_token[:, start : start + h * w]
            levels.append(block.reshape(heads, h, w))
            share[g, level] = block.mean(-1)
            start += h * w
        maps.append(levels)
    return FusionAttention(tuple(names), maps, share)


def explain(
    detector_or_path: SinkDetector | str | Path,
    image: np.ndarray | str | Path,
    prompt: str | Sequence[str],
    *,
    sinks: int | None = None,
    sink_init: str | None = None,
    device: str = "auto",
) -> ExplainResult:
    """Draw first-fusion-layer attention per class, stock prompt beside sink prompt.

    detector_or_path: a SinkDetector (its model is shared, not reloaded) or a
        checkpoint id/dir. sinks: how many sinks the right panel uses
        (default: the detector's own if it has any, else 16).
    image: (H, W, 3) uint8 RGB array or an image file path.
    """
    from streamsink.detector.model import SinkDetector

    if isinstance(detector_or_path, SinkDetector):
        base = detector_or_path
    else:
        base = SinkDetector.from_pretrained(detector_or_path, sinks=0, device=device)
    if sinks is None:
        sinks = base.sinks or 16
    if sinks < 1:
        raise ValueError(f"explain compares against a prompt with sinks; sinks must be >= 1, got {sinks}")
    image = load_image(image)
    stock = fusion_attention(base.with_sinks(0), image, prompt)
    sunk = fusion_attention(base.with_sinks(sinks, sink_init), image, prompt)
    classes = stock.names
    sink_grid = sunk.share[-1]
    class_share = {
        name: (float(stock.share[i].mean()), float(sunk.share[i].mean())) for i, name in enumerate(classes)
    }
    figure = draw(image, stock, sunk, sinks)
    return ExplainResult(figure, classes, sinks, float(sink_grid.mean()), sink_grid, class_share)


def load_image(image: np.ndarray | str | Path) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image: expected (H, W, 3) uint8 RGB array, got {image.shape} {image.dtype}")
        return image
    import cv2

    path = Path(image)
    if not path.is_file():
        raise SourceNotFoundError(f"image {str(path)!r} does not exist")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceError(f"cannot read {str(path)!r} as an image")
    return np.ascontiguousarray(bgr[..., ::-1])


def draw(image: np.ndarray, stock: FusionAttention, sunk: FusionAttention, sinks: int) -> np.ndarray:
    """Lay the maps out as a grid: per phrase a block of (levels x heads) cells, left stock, right sinks.

    Each phrase uses one colour scale for both panels (its largest value), so
    the two sides compare directly; the sinks' block has no left side.
    """
    import cv2

    levels = len(sunk.maps[0])
    heads = sunk.maps[0][0].shape[0]
    height, width = image.shape[:2]
    cell_w = max(16, round(CELL * width / height))
    panel_w = max(heads * (cell_w + GAP), 330)
    total_w = LABEL_WIDTH + 2 * panel_w + 3 * GAP
    rows = len(sunk.names) * levels
    total_h = HEADER + CELL + GAP + rows * (CELL + GAP) + (len(sunk.names) - 1) * GAP + 2 * GAP
    canvas = np.full((total_h, total_w, 3), BACKGROUND, np.uint8)
    left_x = LABEL_WIDTH
    right_x = LABEL_WIDTH + panel_w + 3 * GAP
    sink_pct = 100 * float(sunk.share[-1].mean())
    _text(canvas, "without sinks", (left_x, 18))
    _text(canvas, f"with {sinks} sinks: {sink_pct:.1f}% of attention to sinks", (right_x, 18))
    for head in range(heads):
        _text(canvas, f"head {head}", (left_x + head * (cell_w + GAP), HEADER - 6), scale=0.35)
        _text(canvas, f"head {head}", (right_x + head * (cell_w + GAP), HEADER - 6), scale=0.35)
    thumb = cv2.resize(image, (cell_w, CELL), interpolation=cv2.INTER_AREA)
    y = HEADER
    _text(canvas, "image", (4, y + CELL // 2))
    canvas[y : y + CELL, left_x : left_x + cell_w] = thumb
    canvas[y : y + CELL, right_x : right_x + cell_w] = thumb
    y += CELL + 2 * GAP
    for p, name in enumerate(sunk.names):
        left = stock.maps[p] if p < len(stock.names) else None
        right = sunk.maps[p]
        vmax = max(float(m.max()) for m in right + (left or [])) or 1.0
        for level in range(levels):
            _text(canvas, f"{name[:11]} L{level}", (4, y + CELL // 2 + 4), scale=0.4)
            if level == 0:
                before = f"{100 * stock.share[p].mean():.0f}% -> " if left is not None else ""
                _text(canvas, f"{before}{100 * sunk.share[p].mean():.0f}%", (4, y + CELL // 2 + 20), scale=0.35)
            for head in range(heads):
                if left is not None:
                    _paste(canvas, _heat(left[level][head], vmax, cell_w), left_x + head * (cell_w + GAP), y)
                _paste(canvas, _heat(right[level][head], vmax, cell_w), right_x + head * (cell_w + GAP), y)
            y += CELL + GAP
        y += GAP
    return canvas


def _heat(values: np.ndarray, vmax: float, cell_w: int) -> np.ndarray:
    import cv2

    scaled = np.clip(values / vmax * 255.0, 0, 255).astype(np.uint8)
    scaled = cv2.resize(scaled, (cell_w, CELL), interpolation=cv2.INTER_NEAREST)
    return cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS)[..., ::-1]


def _paste(canvas: np.ndarray, tile: np.ndarray, x: int, y: int) -> None:
    canvas[y : y + tile.shape[0], x : x + tile.shape[1]] = tile


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], *, scale: float = 0.45) -> None:
    import cv2

    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
