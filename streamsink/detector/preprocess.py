"""Frames to the model's pixel values on the device, as the checkpoint's processor would make them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Our torch resize vs the processor's PIL one (measured on noise and smooth
# frames, 31x47 to 1920x1080): about 99% of values identical, the rest one
# uint8 level off, rarely two when upscaling; 2 levels / min(std) after normalising.
PREPROCESS_ATOL = 2.0 / 255 / 0.224 + 1e-4
PREPROCESS_MISMATCH = 0.03


def target_size(height: int, width: int, shortest_edge: int, longest_edge: int) -> tuple[int, int]:
    """The (height, width) the checkpoint's processor resizes a frame to (shortest/longest edge rule)."""
    from transformers.image_transforms import get_size_with_aspect_ratio

    return tuple(get_size_with_aspect_ratio((height, width), shortest_edge, longest_edge))


def normalise(batch: torch.Tensor, *, shortest_edge: int, longest_edge: int, rescale_factor: float,
              mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, H, W, 3) uint8 frames to (B, 3, h, w) pixel values in `dtype`, as the checkpoint's processor makes them.

    mean, std: (1, 3, 1, 1) float32 on the frames' device.
    """
    height, width = batch.shape[1:3]
    new_height, new_width = target_size(height, width, shortest_edge, longest_edge)
    # PIL resamples one axis, rounds to uint8, then the other, starting with the
    # axis that gives the smaller intermediate image; doing the same keeps
    # about 99% of values identical to the processor's.
    if new_width * height <= width * new_height:
        sizes = ((height, new_width), (new_height, new_width))
    else:
        sizes = ((new_height, width), (new_height, new_width))
    if batch.device.type == "cpu":
        # On CPU torch resizes uint8 channels-last frames in integer arithmetic, as
        # PIL does: several times faster than float passes, and as close or closer.
        pixels = batch.permute(0, 3, 1, 2)
        if (new_height, new_width) != (height, width):
            for size in sizes:
                pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
        pixels = pixels.float()
    else:
        pixels = batch.permute(0, 3, 1, 2).float()
        if (new_height, new_width) != (height, width):
            for size in sizes:
                pixels = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
                pixels = pixels.round_().clamp_(0, 255)
    pixels = (pixels * rescale_factor - mean) / std
    return pixels.to(dtype).contiguous()


def check_frame(frame, index: int) -> np.ndarray:
    frame = getattr(frame, "image", frame)
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", type(frame).__name__)
        dtype = getattr(frame, "dtype", "")
        raise ValueError(f"frames[{index}]: expected (H, W, 3) uint8 RGB array, got {shape} {dtype}".rstrip())
    return np.ascontiguousarray(frame)
