"""The OpenVINO backend: the per-frame graph compiled for the CPU, the text side still in torch.

`forward_with_text` takes the prompt's encoded text as tensors, so with the
text entering as inputs one converted graph serves every frame of a prompt.
The graph is converted per (frame size, prompt length): the model's Python
code turns feature-map sizes into constants while it is traced, so a graph
traced at one size silently gives wrong boxes at another. The batch size
stays symbolic in the trace; each batch size is compiled from the same graph.

Converted graphs are kept on disk under the user's cache folder, keyed by the
weights' content, the config and the versions of everything that shapes the
graph, so a second run skips the conversion; OpenVINO's own compiled-blob
cache (CACHE_DIR) skips the compilation too.

A batch of several frames runs as one request per frame, spread over parallel
inference streams (OpenVINO's throughput mode, the threads split between the
streams): on the 2-core VM, benchmark 8 (forward and scoring, batch 2) gave the
full-size Grounding DINO-T architecture at 320x426 1.09-1.11x the frames per
second of one two-frame request, and the small demo model the same speed either
way (0.95-1.09x). A lone frame (a live source) keeps every thread on one
request, the lowest latency.

Precision: OpenVINO's CPU plugin runs bf16 on CPUs that have it unless told
f32; f32 is the default here because it gives torch's detections. bf16 is
opt-in (`dtype="bf16"`) and refused on a CPU without bf16 instructions.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from streamsink.detector import forward as forward_module
from streamsink.detector.checkpoint import first_line
from streamsink.detector.forward import RawOutput, TextEncoding, forward_with_text
from streamsink.errors import StreamsinkError
from streamsink.settings import cache_folder

logger = logging.getLogger(__name__)

PRECISIONS = {torch.float32: "f32", torch.bfloat16: "bf16"}
# The CPU plugin's "snippets" pass failed to compile this graph (openvino 2026.4); the rest is unaffected.
CPU_CONFIG = {"SNIPPETS_MODE": "DISABLE"}
_INPUTS = ("pixel_values", "text_features", "text_token_mask", "text_self_attention_mask", "text_position_ids")


class OpenVINOUnavailable(StreamsinkError):
    """OpenVINO cannot run this model here (not installed, no conversion, no compilation); torch runs it."""


def installed() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_has_bf16() -> bool:
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in capabilities


def model_key(model) -> str:
    """A hash of what a converted graph depends on: weights, config, forward's source, library versions.

    Reads every weight once (a second for the full-size model), so a model
    fine-tuned in memory, or a checkpoint changed on disk, never meets a stale graph.
    """
    import openvino
    import transformers

    digest = hashlib.blake2b(digest_size=16)
    digest.update(model.config.to_json_string().encode())
    digest.update(inspect.getsource(forward_module).encode())
    digest.update(f"{torch.__version__} {transformers.__version__} {openvino.__version__}".encode())
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def open_openvino(model, precision: str) -> OpenVINOForward:
    """The runner for a detector that asked for OpenVINO; what this machine cannot do is a one-line ValueError."""
    try:
        return OpenVINOForward(model, precision=precision)
    except OpenVINOUnavailable as error:
        raise ValueError(str(error)) from None


class _PerFrameGraph(torch.nn.Module):
    """`forward_with_text` with the text encoding's tensors as inputs: what gets traced."""

    def __init__(self, model, layout) -> None:
        super().__init__()
        self.model = model
        self.layout = layout
        self.spatial_shapes: list[tuple[int, int]] = []  # recorded while tracing: no second forward for them

    def forward(self, pixel_values, features, token_mask, self_attention_mask, position_ids):
        text = TextEncoding(self.layout, features, token_mask, self_attention_mask, position_ids, phrase_map=None)
        raw = forward_with_text(self.model, pixel_values, text)
        self.spatial_shapes = raw.spatial_shapes
        return raw.logits, raw.pred_boxes


def _logit_extensions():
    """`aten::special_logit` (the decoder's box refinement) has no conversion rule: the same arithmetic in ops."""
    import openvino.opset13 as ops
    from openvino.frontend.pytorch import ConversionExtension

    def logit(context):
        x = context.get_input(0)
        eps = float(context.get_values_from_const_input(1))
        x = ops.clamp(x, eps, 1.0 - eps)
        one = ops.constant(np.float32(1.0))
        return [ops.log(ops.divide(x, ops.subtract(one, x))).output(0)]

    return [ConversionExtension("aten::special_logit", logit), ConversionExtension("aten::logit", logit)]


def _text_arrays(text: TextEncoding) -> list[np.ndarray]:
    tensors = (text.features, text.token_mask, text.self_attention_mask, text.position_ids)
    return [t.detach().float().numpy() if t.is_floating_point() else t.numpy() for t in tensors]


class OpenVINOForward:
    """`forward_with_text` run by OpenVINO on the CPU; the same call as the torch runner.

    precision: "f32" (torch's detections) or "bf16". threads: the CPU
    plugin's inference threads; None takes torch's thread count when a graph
    is compiled, which the engine has set by then (its `threads` setting,
    see `engine.default_threads`), so one setting governs both backends.
    streams: parallel requests a batch is spread over, one frame each; None
    takes one per thread (at most one per frame), 1 runs a batch as one request.
    Raises OpenVINOUnavailable when OpenVINO is missing or bf16 is asked of
    a CPU without it; a graph that fails to convert or compile raises it at
    its first call, and the caller runs torch instead.
    """

    def __init__(self, model, *, precision: str = "f32", threads: int | None = None,
                 streams: int | None = None, cache_dir: str | Path | None = None) -> None:
        if not installed():
            raise OpenVINOUnavailable("OpenVINO is not installed (pip install 'streamsink[openvino]')")
        import openvino as ov

        if precision not in PRECISIONS.values():
            raise ValueError(f"OpenVINO precision must be one of {', '.join(PRECISIONS.values())}, got {precision!r}")
        if precision == "bf16" and not cpu_has_bf16():
            raise OpenVINOUnavailable("bf16 asked for, but this CPU has no bf16 instructions; use fp32")
        self.model = model
        self.precision = precision
        self.threads = threads
        if streams is not None and (isinstance(streams, bool) or not isinstance(streams, int) or streams < 1):
            raise ValueError(f"streams must be an integer >= 1 or None, got {streams!r}")
        self.streams = streams
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_folder() / "openvino"
        self.core = ov.Core()
        self.conversions = 0  # graphs converted by this runner (not read from the disk cache)
        self._key: str | None = None
        self._graphs: dict[tuple[int, int, int], tuple] = {}
        self._requests: dict[tuple[int, int, int, int], object] = {}
        self._queues: dict[tuple[int, int, int, int], object] = {}  # (streams, H, W, L) -> (queue, shapes)

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = model_key(self.model)
        return self._key

    def __call__(self, pixels: torch.Tensor, text: TextEncoding) -> RawOutput:
        batch, _, height, width = pixels.shape
        length = text.features.shape[1]
        threads = self._thread_count()
        streams = min(self.streams or threads, threads, batch)
        frames = pixels.detach().float().numpy()
        if streams > 1:
            logits, boxes, spatial_shapes = self._spread(streams, frames, height, width, length, pixels, text)
        else:
            request, spatial_shapes = self._request(batch, height, width, length, pixels, text)
            outputs = request.infer([frames, *_text_arrays(text)])  # copies out: buffers are reused next call
            logits, boxes = outputs[0], outputs[1]
        return RawOutput(torch.from_numpy(logits).to(pixels.dtype), torch.from_numpy(boxes).to(pixels.dtype), None,
                         spatial_shapes)

    def _spread(self, streams: int, frames: np.ndarray, height: int, width: int, length: int, pixels, text):
        """One request per frame over `streams` parallel streams; (logits, boxes) in frame order."""
        key = (streams, height, width, length)
        if key not in self._queues:
            import openvino as ov

            compiled, spatial_shapes = self._compile(1, height, width, length, pixels, text,
                                                     PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=streams)
            self._queues[key] = (ov.AsyncInferQueue(compiled, streams), spatial_shapes)
        queue, spatial_shapes = self._queues[key]
        logits: list = [None] * len(frames)
        boxes: list = [None] * len(frames)

        def done(request, index: int) -> None:  # copies out: the request is reused for a later frame
            logits[index] = request.get_output_tensor(0).data.copy()
            boxes[index] = request.get_output_tensor(1).data.copy()

        queue.set_callback(done)
        text_arrays = _text_arrays(text)  # one prompt's, (1, ...): the graph spreads it over the batch
        for index in range(len(frames)):
            queue.start_async([frames[index : index + 1], *text_arrays], index)
        queue.wait_all()
        return np.concatenate(logits), np.concatenate(boxes), spatial_shapes

    def _request(self, batch: int, height: int, width: int, length: int, pixels, text):
        entry = self._requests.get((batch, height, width, length))
        if entry is None:
            compiled, spatial_shapes = self._compile(batch, height, width, length, pixels, text)
            entry = self._requests[(batch, height, width, length)] = (compiled.create_infer_request(), spatial_shapes)
        return entry

    def _compile(self, batch: int, height: int, width: int, length: int, pixels, text, **options):
        """The graph of this frame size and prompt length compiled for `batch` frames (and CPU `options`)."""
        graph, spatial_shapes = self._graph(height, width, length, pixels, text)
        graph = graph.clone()
        graph.reshape({graph.inputs[0]: [batch, 3, height, width]})
        config = {**CPU_CONFIG, "INFERENCE_PRECISION_HINT": self.precision,
                  "CACHE_DIR": str(self.cache_dir / "compiled"),
                  "INFERENCE_NUM_THREADS": self._thread_count(), **options}
        try:
            return self.core.compile_model(graph, "CPU", config), spatial_shapes
        except Exception as error:
            raise OpenVINOUnavailable(f"OpenVINO could not compile the model: {first_line(error)}") from None

    def _thread_count(self) -> int:
        """The CPU plugin's threads: the runner's own, else torch's at this moment (the engine's setting)."""
        return self.threads or torch.get_num_threads()

    def _graph(self, height: int, width: int, length: int, pixels, text):
        """The converted graph of one frame size and prompt length: from memory, the disk cache, or converted."""
        shape = (height, width, length)
        if shape in self._graphs:
            return self._graphs[shape]
        folder = self.cache_dir / self.key
        path = folder / f"{height}x{width}x{length}.xml"
        meta = path.with_suffix(".json")
        if path.exists() and meta.exists():
            graph = self.core.read_model(path)
            spatial_shapes = [tuple(s) for s in json.loads(meta.read_text())["spatial_shapes"]]
        else:
            logger.info("OpenVINO: converting the model for %dx%d frames and %d text tokens (once: cached in %s)",
                        height, width, length, folder)
            graph, spatial_shapes = self._convert(pixels[:1], text)
            _save(graph, spatial_shapes, path)
        self._graphs[shape] = (graph, spatial_shapes)
        return self._graphs[shape]

    def _convert(self, pixels: torch.Tensor, text: TextEncoding):
        import openvino as ov

        module = _PerFrameGraph(self.model, text.layout).eval()
        example = (pixels.detach().float(), text.features.detach().float(), text.token_mask,
                   text.self_attention_mask, text.position_ids)
        try:
            with torch.inference_mode(), _quiet_tracer():  # as `SinkDetector.infer` calls it
                graph = ov.convert_model(module, example_input=example, extension=_logit_extensions())
        except Exception as error:
            raise OpenVINOUnavailable(f"OpenVINO could not convert the model: {first_line(error)}") from None
        # Frame size and prompt length are constants of the trace: say so in the graph, batch stays free.
        graph.reshape({port: ov.PartialShape([-1, *tensor.shape[1:]]) for port, tensor in zip(graph.inputs, example)})
        for port, name in zip(graph.inputs, _INPUTS):
            port.get_tensor().set_names({name})
        self.conversions += 1
        return graph, module.spatial_shapes


def _save(graph, spatial_shapes, path: Path) -> None:
    """Write the graph and its metadata beside it, atomically: a reader sees a whole pair or none."""
    import openvino as ov

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            staged = Path(scratch) / path.name
            ov.save_model(graph, staged, compress_to_fp16=False)
            staged.with_suffix(".json").write_text(json.dumps({"spatial_shapes": spatial_shapes}))
            os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
            os.replace(staged, path)
            os.replace(staged.with_suffix(".json"), path.with_suffix(".json"))
    except OSError as error:  # a read-only home still runs, it just converts again next time
        logger.warning("could not cache the OpenVINO graph in %s (%s)", path.parent, first_line(error))


class _quiet_tracer:
    """The trace warns about every Python branch on a tensor (all intended here): hide them."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)
