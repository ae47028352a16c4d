"""CUDA helpers of the detector: events, a pinned upload ring, and the forward runner with its fast paths.

The runner also serves CPU runs (compile works there, and the OpenVINO
backend is tried first when one is given); its CUDA graphs need CUDA.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from streamsink.detector.checkpoint import first_line
from streamsink.detector.forward import RawOutput, TextEncoding, forward_with_text

logger = logging.getLogger(__name__)


class no_context:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def record_event(stream: torch.cuda.Stream | None) -> torch.cuda.Event | None:
    if stream is None:
        return None
    event = torch.cuda.Event()
    event.record(stream)
    return event


class PinnedRing:
    """Preallocated pinned host buffers for uploads, reused round-robin.

    A buffer is refilled only once the copy that last read it has finished
    (its event), so several batches can be in flight without a device-wide sync.
    """

    def __init__(self, slots: int = 4) -> None:
        self.slots = slots
        self._buffers: dict[tuple[int, ...], list[list]] = {}
        self._turn: dict[tuple[int, ...], int] = {}

    def upload(self, frames: list[np.ndarray], device: torch.device) -> torch.Tensor:
        shape = (len(frames), *frames[0].shape)
        ring = self._buffers.setdefault(shape, [])
        turn = self._turn.get(shape, 0)
        self._turn[shape] = (turn + 1) % self.slots
        if len(ring) <= turn:
            ring.append([torch.empty(shape, dtype=torch.uint8, pin_memory=True), None])
        slot = ring[turn]
        if slot[1] is not None:
            slot[1].synchronize()
        host = slot[0]
        np.stack(frames, out=host.numpy())
        batch = host.to(device, non_blocking=True)
        slot[1] = torch.cuda.Event()
        slot[1].record()
        return batch


class Runner:
    """`forward_with_text`, optionally compiled or replayed as CUDA graphs, falling back to eager.

    CUDA graphs are captured per (batch, height, width, prompt): a graph
    replays fixed buffers, so the pixels are copied into its input and its
    outputs are overwritten by the next replay (on the same stream, after
    this batch's scores were computed from them).
    """

    def __init__(self, model, device: torch.device, *, compile: bool, cuda_graphs: bool, openvino=None) -> None:
        self.model = model
        self.openvino = openvino  # an OpenVINOForward tried first; torch from its first failure on
        self.compiled = None
        self.graphs: dict[tuple, tuple] | None = {} if cuda_graphs and device.type == "cuda" else None
        if cuda_graphs and device.type != "cuda":
            logger.warning("cuda_graphs needs a CUDA device; running without")
        if compile:
            try:
                self.compiled = torch.compile(forward_with_text, dynamic=False)
            except Exception as error:  # e.g. no compiler toolchain
                logger.warning("torch.compile unavailable (%s); running eagerly", first_line(error))

    def __call__(self, pixels: torch.Tensor, text: TextEncoding) -> RawOutput:
        if self.openvino is not None:
            from streamsink.detector.openvino import OpenVINOUnavailable

            try:
                return self.openvino(pixels, text)
            except OpenVINOUnavailable as error:
                logger.warning("%s; running on torch", error)
                self.openvino = None
        if self.graphs is not None:
            try:
                return self._replay(pixels, text)
            except Exception as error:
                logger.warning("CUDA graph capture failed (%s); running without", first_line(error))
                self.graphs = None
        if self.compiled is not None:
            try:
                return self.compiled(self.model, pixels, text)
            except Exception as error:
                logger.warning("compiled forward failed (%s); running eagerly", first_line(error))
                self.compiled = None
        return forward_with_text(self.model, pixels, text)

    def _replay(self, pixels: torch.Tensor, text: TextEncoding) -> RawOutput:
        key = (*pixels.shape, pixels.dtype, id(text.features))
        entry = self.graphs.get(key)
        if entry is None:
            static = pixels.clone()
            side = torch.cuda.Stream(pixels.device)
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up: lazy initialisations must not happen inside the capture
                    forward_with_text(self.model, static, text)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: the prepare stage keeps using CUDA in its own thread during capture.
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                output = forward_with_text(self.model, static, text)
            entry = self.graphs[key] = (graph, static, output, text)
        graph, static, output, _ = entry
        static.copy_(pixels)
        graph.replay()
        return output
