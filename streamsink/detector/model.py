"""SinkDetector: Grounding DINO with attention sinks appended to the prompt.

Early-fusion detectors make every image token spread its softmax attention
over the prompt's tokens, so when the named object is absent class
information still leaks into the image features and something fires. Sinks
(extra neutral one-token classes after the real ones, as in "Fantastic
Tractor-Dogs and How Not to Find Them With Open-Vocabulary Detectors") give
that attention somewhere harmless to go; a box whose best class is a sink is
dropped. Training-free: the checkpoint's weights and transformers' classes are
never edited; the sinks enter through the text we feed the model's own
modules (see `forward_with_text`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from streamsink.detector.checkpoint import load_checkpoint
from streamsink.detector.cuda import PinnedRing, Runner, no_context, record_event
from streamsink.detector.device import openvino_precision, resolve_backend, resolve_device, resolve_dtype
from streamsink.detector.forward import RawOutput, TextEncoding, forward_with_text
from streamsink.detector.openvino import OpenVINOForward, open_openvino
from streamsink.detector.preprocess import PREPROCESS_ATOL, PREPROCESS_MISMATCH, check_frame, normalise
from streamsink.detector.prompt import TextLayout, build_layout, parse_classes
from streamsink.detector.sinks import sink_embeddings
from streamsink.settings import SINK_INITS, check_choice, check_int
from streamsink.types import Detections

__all__ = ["PREPROCESS_ATOL", "PREPROCESS_MISMATCH", "RawOutput", "SinkDetector", "TextEncoding", "resolve_device",
           "resolve_dtype"]

logger = logging.getLogger(__name__)

TEXT_CACHE_SIZE = 8


class SinkDetector:
    """Open-vocabulary detector with `sinks` attention sinks appended to every prompt.

    `detector.model` is the untouched transformers model; `detector.text_encodings`
    counts how often a prompt was actually encoded (once per distinct prompt
    while it stays in the small cache).
    """

    def __init__(
        self,
        model,
        processor,
        *,
        sinks: int = 16,
        sink_init: str = "mean",
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        image_size: int | None = None,
        compile: bool = False,
        cuda_graphs: bool = False,
        backend: str = "auto",
        openvino: OpenVINOForward | None = None,
    ) -> None:
        check_int("sinks", sinks, 0)
        check_choice("sink_init", sink_init, SINK_INITS)
        self.device = resolve_device(device)
        backend = resolve_backend(backend, self.device)
        self.dtype = resolve_dtype(dtype, self.device, backend=backend)
        precision = None
        if backend == "openvino":  # the torch side (text, pixels, scores) stays f32; the graph takes the precision
            precision = openvino_precision(self.dtype)
            self.dtype = torch.float32
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.sinks = sinks
        self.sink_init = sink_init
        self.max_text_len = int(getattr(model.config, "max_text_len", 256))
        image_processor = processor.image_processor
        size = image_processor.size
        shortest = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
        longest = size.get("longest_edge") if isinstance(size, dict) else getattr(size, "longest_edge", None)
        shortest, longest = shortest or 800, longest or 1333
        if image_size is not None:
            if image_size < 32:
                raise ValueError(f"image_size must be >= 32, got {image_size}")
            longest = round(image_size * longest / shortest)
            shortest = image_size
        self.shortest_edge, self.longest_edge = int(shortest), int(longest)
        self.rescale_factor = float(getattr(image_processor, "rescale_factor", 1 / 255))
        mean = torch.tensor(image_processor.image_mean, dtype=torch.float32, device=self.device)
        std = torch.tensor(image_processor.image_std, dtype=torch.float32, device=self.device)
        self._mean, self._std = mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1)
        word_embeddings = self.model.model.text_backbone.get_input_embeddings().weight
        self._sink_vectors = sink_embeddings(word_embeddings, sinks, sink_init, tokenize=self._tokenize)
        self._text_cache: OrderedDict[tuple[str, ...], TextEncoding] = OrderedDict()
        self.text_encodings = 0
        if backend == "openvino" and openvino is None:
            openvino = open_openvino(self.model, precision)
        self._runner = Runner(self.model, self.device, compile=compile, cuda_graphs=cuda_graphs, openvino=openvino)
        self._host = PinnedRing() if self.device.type == "cuda" else None
        self._copy_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._compute_stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_dir: str | Path,
        *,
        sinks: int = 16,
        sink_init: str = "mean",
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        image_size: int | None = None,
        compile: bool = False,
        cuda_graphs: bool = False,
        backend: str = "auto",
    ) -> SinkDetector:
        """Load a Grounding DINO / MM-Grounding-DINO / LLMDet checkpoint (hub id or local dir).

        sinks=0 runs the stock model; image_size is the shortest edge frames
        are resized to (default: the processor's, 800 for released checkpoints).
        compile runs the forward pass through torch.compile; cuda_graphs
        replays it as a CUDA graph per batch and image shape (CUDA only).
        Either falls back to the plain forward, with a warning, where it fails.
        backend: "torch", "openvino" (the per-frame graph compiled by OpenVINO,
        CPU only) or "auto" (OpenVINO on a CPU where it is installed); a graph
        OpenVINO cannot convert or compile runs on torch, with a warning.
        OpenVINO compiles with torch's thread count of that moment, so the
        engine's `threads` setting governs both backends.
        """
        check_choice("sink_init", sink_init, SINK_INITS)
        model, processor = load_checkpoint(model_id_or_dir)
        return cls(model, processor, sinks=sinks, sink_init=sink_init, device=device, dtype=dtype,
                   image_size=image_size, compile=compile, cuda_graphs=cuda_graphs, backend=backend)

    @property
    def backend(self) -> str:
        """What runs the per-frame graph now: "openvino", or "torch" (also after OpenVINO failed)."""
        return "openvino" if self._runner.openvino is not None else "torch"

    @property
    def precision(self) -> str:
        """The forward pass's precision: OpenVINO's inference precision, else the torch dtype's name."""
        if self._runner.openvino is not None:
            return self._runner.openvino.precision
        return str(self.dtype).removeprefix("torch.")

    def with_sinks(self, sinks: int, sink_init: str | None = None) -> SinkDetector:
        """A detector sharing this one's model (no copy, no reload) with another sink setting."""
        openvino = self._runner.openvino  # one OpenVINO runner: its graphs are keyed by prompt length
        other = SinkDetector(self.model, self.processor, sinks=sinks, sink_init=sink_init or self.sink_init,
                             device=self.device, dtype=self.dtype, backend=self.backend, openvino=openvino)
        other.shortest_edge, other.longest_edge = self.shortest_edge, self.longest_edge
        return other

    def _tokenize(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def layout(self, prompt: str | Sequence[str]) -> TextLayout:
        """Token layout of a prompt with this detector's sinks; raises PromptError past the text limit."""
        return build_layout(parse_classes(prompt), self._tokenize, sinks=self.sinks, max_len=self.max_text_len)

    @torch.inference_mode()
    def encode_prompt(self, prompt: str | Sequence[str]) -> TextEncoding:
        """Encode a prompt's text side once; later calls with the same classes reuse it."""
        classes = parse_classes(prompt)
        cached = self._text_cache.get(classes)
        if cached is not None:
            self._text_cache.move_to_end(classes)
            return cached
        layout = build_layout(classes, self._tokenize, sinks=self.sinks, max_len=self.max_text_len)
        core = self.model.model
        input_ids = torch.as_tensor(layout.input_ids, device=self.device)[None]
        inputs_embeds = core.text_backbone.get_input_embeddings()(input_ids)
        if self.sinks:
            sink_positions = torch.as_tensor(layout.sink_positions, device=self.device)
            inputs_embeds[0, sink_positions] = self._sink_vectors.to(inputs_embeds)
        self_mask = torch.as_tensor(layout.self_attention_mask, device=self.device)[None]
        position_ids = torch.as_tensor(layout.position_ids, device=self.device)[None]
        text_outputs = core.text_backbone(
            inputs_embeds=inputs_embeds,
            attention_mask=self_mask[:, None],
            token_type_ids=torch.zeros_like(input_ids),
            position_ids=position_ids,
            return_dict=True,
        )
        features = core.text_projection(text_outputs.last_hidden_state)
        encoding = TextEncoding(
            layout=layout,
            features=features,
            token_mask=torch.ones_like(input_ids, dtype=torch.bool),
            self_attention_mask=self_mask,
            position_ids=position_ids,
            phrase_map=torch.as_tensor(layout.phrase_map(), device=self.device),
        )
        self.text_encodings += 1
        self._text_cache[classes] = encoding
        while len(self._text_cache) > TEXT_CACHE_SIZE:
            self._text_cache.popitem(last=False)
        return encoding

    @torch.inference_mode()
    def preprocess(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """(B, 3, h, w) pixel values in the model's dtype, made on the target device.

        All frames must share one size. Resize follows the processor's rule
        and filter (antialiased bilinear, rounded to uint8 levels as PIL
        does, axis by axis), then rescale and normalise: within PREPROCESS_ATOL
        of the processor's pixel_values, with under PREPROCESS_MISMATCH of
        the values differing at all.
        """
        frames = [check_frame(frame, i) for i, frame in enumerate(frames)]
        if not frames:
            raise ValueError("frames is empty")
        height, width = frames[0].shape[:2]
        if any(frame.shape[:2] != (height, width) for frame in frames):
            raise ValueError("frames in one batch must share one size; group them by size")
        return self._normalise(self._upload(frames))

    def _upload(self, frames: list[np.ndarray]) -> torch.Tensor:
        """(B, H, W, 3) uint8 on the device; on CUDA through a reused pinned buffer, asynchronously."""
        if self._host is None:
            return torch.from_numpy(np.stack(frames))
        return self._host.upload(frames, self.device)

    def _normalise(self, batch: torch.Tensor) -> torch.Tensor:
        return normalise(batch, shortest_edge=self.shortest_edge, longest_edge=self.longest_edge,
                         rescale_factor=self.rescale_factor, mean=self._mean, std=self._std, dtype=self.dtype)

    @torch.inference_mode()
    def forward(
        self, pixel_values: torch.Tensor, prompt: str | Sequence[str], *, output_attentions: bool = False
    ) -> RawOutput:
        """Raw logits and boxes for a batch of preprocessed frames and one prompt."""
        text = self.encode_prompt(prompt)
        pixel_values = pixel_values.to(device=self.device, dtype=self.dtype)
        return forward_with_text(self.model, pixel_values, text, output_attentions=output_attentions)

    @torch.inference_mode()
    def detect(
        self, frames: Sequence[np.ndarray], prompt: str | Sequence[str], *, threshold: float = 0.3
    ) -> list[Detections]:
        """Detect the prompt's classes in RGB uint8 frames; one Detections per frame.

        Frames of one size run as one forward pass (frames of several sizes
        run one pass per size). Each query is scored per class as the mean of
        its phrase's token probabilities; a query whose best phrase is a sink,
        or whose best class scores <= threshold, is dropped. Boxes are in each
        frame's pixels, clipped to it, highest score first.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        return self.finish(self.infer(self.prepare(frames), prompt, threshold=threshold))

    # The three steps of `detect`, for an engine that runs them in separate threads:
    # prepare (pixels to the device) -> infer (forward pass and scoring, queued on
    # the device) -> finish (wait, boxes and scores to numpy). Run in that order
    # they are `detect`, operation for operation.

    @torch.inference_mode()
    def prepare(self, frames: Sequence[np.ndarray]) -> PreparedBatch:
        """Check, group by size, upload and normalise a batch of frames.

        On CUDA the copy and the resize run on their own stream, so they
        overlap the forward pass of the batch before; `ready` marks their end.
        """
        frames = [check_frame(frame, i) for i, frame in enumerate(frames)]
        if not frames:
            raise ValueError("frames is empty")
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            groups.setdefault(frame.shape, []).append(i)
        prepared = []
        stream = self._copy_stream
        with torch.cuda.stream(stream) if stream is not None else no_context():
            for (height, width, _), indices in groups.items():
                pixels = self._normalise(self._upload([frames[i] for i in indices]))
                prepared.append((indices, pixels, height, width))
            ready = record_event(stream)
        return PreparedBatch(prepared, len(frames), ready)

    @torch.inference_mode()
    def infer(self, batch: PreparedBatch, prompt: str | Sequence[str], *, threshold: float = 0.3) -> PendingBatch:
        """Forward pass and per-phrase scoring of a prepared batch.

        On CUDA this only queues work on the compute stream (after the
        batch's copy, by event) and starts the copy of the final boxes and
        scores to the host; `finish` waits for it.
        """
        text = self.encode_prompt(prompt)
        classes = text.layout.classes
        stream = self._compute_stream
        if stream is not None and batch.ready is not None:
            stream.wait_event(batch.ready)
        scored = []
        with torch.cuda.stream(stream) if stream is not None else no_context():
            for indices, pixels, height, width in batch.groups:
                if stream is not None:
                    pixels.record_stream(stream)
                raw = self._runner(pixels, text)
                tensors = self._score(raw, text, height, width, threshold, classes)
                if stream is not None:
                    tensors = tuple(t.to("cpu", non_blocking=True) for t in tensors)
                scored.append((indices, tensors))
            done = record_event(stream)
        return PendingBatch(scored, batch.count, classes, done)

    def finish(self, pending: PendingBatch) -> list[Detections]:
        """One Detections per frame of the batch, in its order (waits for the device by event)."""
        if pending.done is not None:
            pending.done.synchronize()
        results: list[Detections | None] = [None] * pending.count
        for indices, tensors in pending.groups:
            for i, detections in zip(indices, _to_detections(tensors, pending.classes)):
                results[i] = detections
        return results

    def _postprocess(self, raw: RawOutput, text: TextEncoding, height: int, width: int, threshold: float,
                     classes: tuple[str, ...]) -> list[Detections]:
        return _to_detections(self._score(raw, text, height, width, threshold, classes), classes)

    def _score(self, raw: RawOutput, text: TextEncoding, height: int, width: int, threshold: float,
               classes: tuple[str, ...]) -> tuple[torch.Tensor, ...]:
        """(keep, scores, best class, xyxy in pixels) per query, on the device."""
        length = text.layout.num_tokens
        probs = raw.logits[..., :length].float().sigmoid()
        phrase_scores = probs @ text.phrase_map.T
        scores, best = phrase_scores.max(-1)
        keep = (best < len(classes)) & (scores > threshold)
        cx, cy, w, h = raw.pred_boxes.float().unbind(-1)
        xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        xyxy = xyxy * torch.tensor([width, height, width, height], device=xyxy.device, dtype=xyxy.dtype)
        xyxy[..., 0::2] = xyxy[..., 0::2].clamp(0, width)
        xyxy[..., 1::2] = xyxy[..., 1::2].clamp(0, height)
        return keep, scores, best, xyxy

    def __repr__(self) -> str:
        return (f"SinkDetector({type(self.model).__name__}, sinks={self.sinks}, sink_init={self.sink_init!r}, "
                f"device={self.device}, backend={self.backend}, precision={self.precision})")


def _to_detections(tensors: tuple[torch.Tensor, ...], classes: tuple[str, ...]) -> list[Detections]:
    keep, scores, best, xyxy = (t.numpy(force=True) for t in tensors)
    out = []
    for k, s, b, box in zip(keep, scores, best, xyxy):
        order = np.argsort(-s[k], kind="stable")
        out.append(Detections(box[k][order], s[k][order], b[k][order].astype(np.int64), classes))
    return out


@dataclass(frozen=True)
class PreparedBatch:
    """Frames of one batch on the device, grouped by size: (indices, (b, 3, h, w) pixels, height, width)."""

    groups: list[tuple[list[int], torch.Tensor, int, int]]
    count: int
    ready: torch.cuda.Event | None = None


@dataclass(frozen=True)
class PendingBatch:
    """A batch whose scores are computed or being computed: (indices, (keep, scores, best, xyxy)) per group."""

    groups: list[tuple[list[int], tuple[torch.Tensor, ...]]]
    count: int
    classes: tuple[str, ...]
    done: torch.cuda.Event | None = None
