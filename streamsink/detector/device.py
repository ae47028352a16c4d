"""Where a detector runs and in what precision: one-line errors before any model is loaded.

`RunSettings.validate` checks how a device is spelled; this module asks
whether this machine has it, which needs torch.
"""

from __future__ import annotations

import logging
import os

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


def resolve_backend(backend: str, device: torch.device) -> str:
    """"auto" is OpenVINO on a CPU where it is installed, torch elsewhere; an impossible choice is a ValueError."""
    from streamsink.detector.openvino import installed
    from streamsink.settings import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return auto_backend(device)
    if backend == "openvino":
        if device.type != "cpu":
            raise ValueError(f"backend openvino runs on the CPU, not on {device}; use --device cpu or --backend torch")
        if not installed():
            raise ValueError("backend openvino asked for, but OpenVINO is not installed: "
                             "pip install 'streamsink[openvino]'")
    return backend


AUTO_BACKEND_VARIABLE = "STREAMSINK_AUTO_BACKEND"


def auto_backend(device: torch.device) -> str:
    """What "auto" means here: OpenVINO on a CPU where it is installed, else torch.

    $STREAMSINK_AUTO_BACKEND=torch makes "auto" mean torch everywhere, child
    processes and Ray workers included (the test suite sets it: a conversion
    per frame size costs seconds that tests about other things should not pay).
    """
    from streamsink.detector.openvino import installed

    if os.environ.get(AUTO_BACKEND_VARIABLE, "").strip().lower() == "torch":
        return "torch"
    return "openvino" if device.type == "cpu" and installed() else "torch"


def openvino_precision(dtype: torch.dtype) -> str:
    """The OpenVINO inference precision of a dtype: f32 (torch's detections) or bf16."""
    if dtype == torch.float32:
        return "f32"
    if dtype == torch.bfloat16:
        return "bf16"
    raise ValueError(f"the OpenVINO backend runs fp32 or bf16, not {dtype}")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device, *, backend: str = "torch") -> torch.dtype:
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
    if dtype != torch.float32 and device.type == "cpu" and backend == "torch":
        logger.warning("%s on CPU is slow and loses precision; consider dtype=None", dtype)
    return dtype
