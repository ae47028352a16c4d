"""Where a detector runs and in what precision: one-line errors before any model is loaded.

`RunSettings.validate` checks how a device is spelled; this module asks
whether this machine has it, which needs torch.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" picks CUDA when present; anything unusable here is a one-line ValueError, before loading."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} asked for, but CUDA is not available here; use cpu or auto")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"device {str(device)!r}: this machine has {count} CUDA device(s)")
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {str(device)!r} asked for, but MPS is not available here; use cpu or auto")
    elif resolved.type != "cpu":
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """fp16 on CUDA by default (the fusion attention clamps for it), fp32 elsewhere."""
    names = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
             "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        if dtype not in names:
            raise ValueError(f"dtype must be one of {', '.join(names)} or a torch.dtype, got {dtype!r}")
        dtype = names[dtype]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    if dtype != torch.float32 and device.type == "cpu":
        logger.warning("%s on CPU is slow and loses precision; consider dtype=None", dtype)
    return dtype
