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
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from streamsink.detector.prompt import TextLayout, build_layout, parse_classes
from streamsink.detector.sinks import SINK_INITS, sink_embeddings
from streamsink.errors import ModelNotFoundError, UnsupportedModelError
from streamsink.types import Detections

logger = logging.getLogger(__name__)

MODEL_CLASSES = {
    "grounding-dino": "GroundingDinoForObjectDetection",
    "mm-grounding-dino": "MMGroundingDinoForObjectDetection",
}
TEXT_CACHE_SIZE = 8
# Our torch resize vs the processor's PIL one (measured on noise and smooth
# frames, 31x47 to 1920x1080): about 99% of values identical, the rest one
# uint8 level off, rarely two when upscaling; 2 levels / min(std) after normalising.
PREPROCESS_ATOL = 2.0 / 255 / 0.224 + 1e-4
PREPROCESS_MISMATCH = 0.03


@dataclass(frozen=True)
class TextEncoding:
    """A prompt encoded once (tokenizer, BERT, sinks) and reused for every frame.

    features: (1, L, d_model) text features after the model's text projection.
    token_mask: (1, L) bool, all True (one prompt, no padding).
    self_attention_mask: (1, L, L) bool, the per-phrase block mask.
    position_ids: (1, L) int64.
    phrase_map: (C + N, L) float32, averages token probabilities per class and sink.
    """

    layout: TextLayout
    features: torch.Tensor
    token_mask: torch.Tensor
    self_attention_mask: torch.Tensor
    position_ids: torch.Tensor
    phrase_map: torch.Tensor


@dataclass(frozen=True)
class RawOutput:
    """The model's own outputs for a batch, before any scoring.

    logits: (B, Q, max_text_len) token logits, -inf past the prompt, as the stock model gives.
    pred_boxes: (B, Q, 4) normalised cx, cy, w, h.
    fusion_attention: per encoder layer, (B * heads, image tokens, L) image-to-text
        attention of its fusion layer, when asked for.
    spatial_shapes: (height, width) of each feature level, image tokens in this order.
    """

    logits: torch.Tensor
    pred_boxes: torch.Tensor
    fusion_attention: tuple[torch.Tensor, ...] | None
    spatial_shapes: list[tuple[int, int]]


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


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1


def load_checkpoint(model_id_or_dir: str | Path):
    """Load (model, processor) for a Grounding DINO family checkpoint, with one-line errors."""
    from transformers import AutoConfig, AutoProcessor

    name = str(model_id_or_dir)
    hint = "pass --model with a local checkpoint directory"
    path = Path(name).expanduser()
    if path.exists() and not path.is_dir():
        raise ModelNotFoundError(f"model {name!r} is a file, not a checkpoint directory; {hint}")
    if not path.is_dir() and (isinstance(model_id_or_dir, Path) or _looks_like_path(name)):
        raise ModelNotFoundError(f"model directory {name!r} does not exist; {hint}")
    source = str(path) if path.is_dir() else name
    try:
        config = AutoConfig.from_pretrained(source)
    except ValueError as error:
        raise UnsupportedModelError(f"{name}: not a Grounding DINO checkpoint ({_first_line(error)})") from error
    except OSError as error:
        logger.debug("config load failed: %s", error)
        raise ModelNotFoundError(f"could not find or download the weights of {name!r}; {hint}") from error
    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_CLASSES:
        raise UnsupportedModelError(
            f"{name}: model type {model_type!r} is not supported; SinkDetector runs "
            "GroundingDinoForObjectDetection and MMGroundingDinoForObjectDetection checkpoints "
            "(Grounding DINO, MM-Grounding-DINO, LLMDet)"
        )
    architectures = getattr(config, "architectures", None) or [MODEL_CLASSES[model_type]]
    if MODEL_CLASSES[model_type] not in architectures:
        raise UnsupportedModelError(
            f"{name}: architecture {', '.join(architectures)} is not supported; "
            f"expected {MODEL_CLASSES[model_type]} (a detection head, not the bare model)"
        )
    import transformers

    model_class = getattr(transformers, MODEL_CLASSES[model_type])
    try:
        model = model_class.from_pretrained(source, config=config)
        processor = AutoProcessor.from_pretrained(source)
    except OSError as error:
        logger.debug("weights/processor load failed: %s", error)
        raise ModelNotFoundError(f"could not find or download the weights of {name!r}; {hint}") from error
    return model.eval(), processor


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def forward_with_text(
    model, pixel_values: torch.Tensor, text: TextEncoding, *, output_attentions: bool = False
) -> RawOutput:
    """`GroundingDinoForObjectDetection.forward` with the text side precomputed.

    The stock forward always runs BERT from input ids; this is the same
    computation from `text_backbone`'s output on, calling the instance's own
    submodules (nothing patched), so a prompt is encoded once and the sinks'
    embeddings enter as BERT inputs. Both families share this forward in
    transformers. Kept line-for-line with it: the tests check the logits and
    boxes for equality with the stock model at sinks=0.
    """
    core = model.model
    config = core.config
    batch, _, height, width = pixel_values.shape
    device = pixel_values.device
    text_features = text.features.expand(batch, -1, -1)
    text_token_mask = text.token_mask.expand(batch, -1)
    text_self_attention_masks = text.self_attention_mask.expand(batch, -1, -1)
    position_ids = text.position_ids.expand(batch, -1)
    pixel_mask = torch.ones((batch, height, width), dtype=torch.long, device=device)

    vision_features, position_embeddings_list = core.backbone(pixel_values, pixel_mask)
    feature_maps = []
    masks = []
    for level, (source, mask) in enumerate(vision_features):
        feature_maps.append(core.input_proj_vision[level](source))
        masks.append(mask)
    if config.num_feature_levels > len(feature_maps):
        num_sources = len(feature_maps)
        for level in range(num_sources, config.num_feature_levels):
            if level == num_sources:
                source = core.input_proj_vision[level](vision_features[-1][0])
            else:
                source = core.input_proj_vision[level](feature_maps[-1])
            mask = F.interpolate(pixel_mask[None].float(), size=source.shape[-2:]).to(torch.bool)[0]
            pos_l = core.backbone.position_embedding(source, mask).to(source.dtype)
            feature_maps.append(source)
            masks.append(mask)
            position_embeddings_list.append(pos_l)

    query_embeds = None
    if config.embedding_init_target or config.two_stage:
        query_embeds = core.query_position_embeddings.weight

    source_flatten = []
    mask_flatten = []
    lvl_pos_embed_flatten = []
    spatial_shapes_list = []
    for level, (source, mask, pos_embed) in enumerate(zip(feature_maps, masks, position_embeddings_list)):
        spatial_shapes_list.append((source.shape[2], source.shape[3]))
        source_flatten.append(source.flatten(2).transpose(1, 2))
        mask_flatten.append(mask.flatten(1))
        lvl_pos_embed_flatten.append(pos_embed.flatten(2).transpose(1, 2) + core.level_embed[level].view(1, 1, -1))
    source_flatten = torch.cat(source_flatten, 1)
    mask_flatten = torch.cat(mask_flatten, 1)
    lvl_pos_embed_flatten = torch.cat(lvl_pos_embed_flatten, 1)
    spatial_shapes = _spatial_shapes(spatial_shapes_list, source_flatten.device)
    level_start_index = torch.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
    valid_ratios = torch.stack([core.get_valid_ratio(m, dtype=source_flatten.dtype) for m in masks], 1)

    encoder_outputs = core.encoder(
        vision_features=source_flatten,
        vision_attention_mask=~mask_flatten,
        vision_position_embedding=lvl_pos_embed_flatten,
        spatial_shapes=spatial_shapes,
        spatial_shapes_list=spatial_shapes_list,
        level_start_index=level_start_index,
        valid_ratios=valid_ratios,
        text_features=text_features,
        text_attention_mask=~text_token_mask,
        text_position_embedding=None,
        text_self_attention_masks=~text_self_attention_masks,
        text_position_ids=position_ids,
        output_attentions=output_attentions,
        output_hidden_states=False,
        return_dict=True,
    )
    vision_memory = encoder_outputs.last_hidden_state_vision
    text_memory = encoder_outputs.last_hidden_state_text

    if config.two_stage:
        object_query_embedding, output_proposals = core.generate_encoder_output_proposals(
            vision_memory, ~mask_flatten, spatial_shapes_list
        )
        best_logit = _best_encoder_logit(core.encoder_output_class_embed, object_query_embedding, text_memory,
                                         text_token_mask)
        enc_outputs_coord_logits = core.encoder_output_bbox_embed(object_query_embedding) + output_proposals
        topk_proposals = torch.topk(best_logit, config.num_queries, dim=1)[1]
        topk_coords_logits = torch.gather(enc_outputs_coord_logits, 1, topk_proposals.unsqueeze(-1).repeat(1, 1, 4))
        reference_points = topk_coords_logits.detach().sigmoid()
        if query_embeds is not None:
            target = query_embeds.unsqueeze(0).repeat(batch, 1, 1)
        else:
            target = torch.gather(
                object_query_embedding, 1, topk_proposals.unsqueeze(-1).repeat(1, 1, config.d_model)
            ).detach()
    else:
        target = query_embeds.unsqueeze(0).repeat(batch, 1, 1)
        reference_points = core.reference_points.weight.unsqueeze(0).repeat(batch, 1, 1).sigmoid()
    init_reference_points = reference_points

    decoder_outputs = core.decoder(
        inputs_embeds=target,
        vision_encoder_hidden_states=vision_memory,
        vision_encoder_attention_mask=mask_flatten,
        text_encoder_hidden_states=text_memory,
        text_encoder_attention_mask=~text_token_mask,
        reference_points=reference_points,
        spatial_shapes=spatial_shapes,
        spatial_shapes_list=spatial_shapes_list,
        level_start_index=level_start_index,
        valid_ratios=valid_ratios,
        self_attn_mask=None,
        output_attentions=False,
        output_hidden_states=False,
        return_dict=True,
    )

    # The stock head computes every decoder level and returns the last; only the last is needed.
    hidden_states = decoder_outputs.intermediate_hidden_states
    last = hidden_states.shape[1] - 1
    reference = init_reference_points if last == 0 else decoder_outputs.intermediate_reference_points[:, last - 1]
    reference = torch.special.logit(reference, eps=1e-5)
    logits = model.class_embed[last](
        vision_hidden_state=hidden_states[:, last], text_hidden_state=text_memory, text_token_mask=text_token_mask
    )
    delta_bbox = model.bbox_embed[last](hidden_states[:, last])
    if reference.shape[-1] == 4:
        coord_logits = delta_bbox + reference
    else:
        delta_bbox[..., :2] += reference
        coord_logits = delta_bbox
    fusion = encoder_outputs.attentions[0] if output_attentions else None
    return RawOutput(logits, coord_logits.sigmoid(), fusion, spatial_shapes_list)


_SHAPES_CACHE: dict[tuple[tuple[tuple[int, int], ...], torch.device], torch.Tensor] = {}


def _spatial_shapes(shapes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
    """The (levels, 2) shapes tensor, made once per frame size and device.

    The stock forward builds it from a Python list every call: a blocking
    host-to-device copy on CUDA, and an operation a CUDA graph cannot capture.
    """
    key = (tuple(shapes), device)
    cached = _SHAPES_CACHE.get(key)
    if cached is None:
        cached = _SHAPES_CACHE[key] = torch.as_tensor(shapes, dtype=torch.long, device=device)
    return cached


def _best_encoder_logit(head, vision: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
    """`head(vision, text, text_mask).max(-1)[0]` without the head's (B, tokens, max_text_len) padding.

    The stock two-stage selection pads every image token's logits with -inf
    to 256 text columns and only reads their maximum, which the padding never
    is: the same numbers from the real columns alone, at a fraction of the
    memory traffic. Heads of unknown classes run as they are.
    """
    kind = type(head).__name__
    if kind == "GroundingDinoContrastiveEmbedding":
        logits = (vision @ text.transpose(-1, -2)).masked_fill(~text_mask[:, None, :], float("-inf"))
    elif kind == "MMGroundingDinoContrastiveEmbedding":
        logits = vision @ text.transpose(-1, -2)
        logits = logits / math.sqrt(vision.shape[-1])
        logits = logits + head.bias
        logits.masked_fill_(~text_mask[:, None, :], float("-inf"))
    else:
        return head(vision, text, text_mask).max(-1)[0]
    if logits.dtype != torch.float32:
        logits = logits.float()  # the stock head's padding is float32, so its max is too
    return logits.max(-1)[0]


def target_size(height: int, width: int, shortest_edge: int, longest_edge: int) -> tuple[int, int]:
    """The (height, width) the checkpoint's processor resizes a frame to (shortest/longest edge rule)."""
    from transformers.image_transforms import get_size_with_aspect_ratio

    return tuple(get_size_with_aspect_ratio((height, width), shortest_edge, longest_edge))


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
    ) -> None:
        if not isinstance(sinks, int) or sinks < 0:
            raise ValueError(f"sinks must be an int >= 0, got {sinks!r}")
        if sink_init not in SINK_INITS:
            raise ValueError(f"sink_init must be one of {', '.join(SINK_INITS)}, got {sink_init!r}")
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
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
        self._runner = _Runner(self.model, self.device, compile=compile, cuda_graphs=cuda_graphs)
        self._host = _PinnedRing() if self.device.type == "cuda" else None
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
    ) -> SinkDetector:
        """Load a Grounding DINO / MM-Grounding-DINO / LLMDet checkpoint (hub id or local dir).

        sinks=0 runs the stock model; image_size is the shortest edge frames
        are resized to (default: the processor's, 800 for released checkpoints).
        compile runs the forward pass through torch.compile; cuda_graphs
        replays it as a CUDA graph per batch and image shape (CUDA only).
        Either falls back to the plain forward, with a warning, where it fails.
        """
        if sink_init not in SINK_INITS:
            raise ValueError(f"sink_init must be one of {', '.join(SINK_INITS)}, got {sink_init!r}")
        model, processor = load_checkpoint(model_id_or_dir)
        return cls(model, processor, sinks=sinks, sink_init=sink_init, device=device, dtype=dtype,
                   image_size=image_size, compile=compile, cuda_graphs=cuda_graphs)

    def with_sinks(self, sinks: int, sink_init: str | None = None) -> SinkDetector:
        """A detector sharing this one's model (no copy, no reload) with another sink setting."""
        other = SinkDetector(self.model, self.processor, sinks=sinks, sink_init=sink_init or self.sink_init,
                             device=self.device, dtype=self.dtype)
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
        frames = [_check_frame(frame, i) for i, frame in enumerate(frames)]
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
        height, width = batch.shape[1:3]
        new_height, new_width = target_size(height, width, self.shortest_edge, self.longest_edge)
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
        pixels = (pixels * self.rescale_factor - self._mean) / self._std
        return pixels.to(self.dtype).contiguous()

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
        frames = [_check_frame(frame, i) for i, frame in enumerate(frames)]
        if not frames:
            raise ValueError("frames is empty")
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            groups.setdefault(frame.shape, []).append(i)
        prepared = []
        stream = self._copy_stream
        with torch.cuda.stream(stream) if stream is not None else _no_context():
            for (height, width, _), indices in groups.items():
                pixels = self._normalise(self._upload([frames[i] for i in indices]))
                prepared.append((indices, pixels, height, width))
            ready = _record_event(stream)
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
        with torch.cuda.stream(stream) if stream is not None else _no_context():
            for indices, pixels, height, width in batch.groups:
                if stream is not None:
                    pixels.record_stream(stream)
                raw = self._runner(pixels, text)
                tensors = self._score(raw, text, height, width, threshold, classes)
                if stream is not None:
                    tensors = tuple(t.to("cpu", non_blocking=True) for t in tensors)
                scored.append((indices, tensors))
            done = _record_event(stream)
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
                f"device={self.device}, dtype={self.dtype})")


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


class _no_context:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _record_event(stream: torch.cuda.Stream | None) -> torch.cuda.Event | None:
    if stream is None:
        return None
    event = torch.cuda.Event()
    event.record(stream)
    return event


class _PinnedRing:
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


class _Runner:
    """`forward_with_text`, optionally compiled or replayed as CUDA graphs, falling back to eager.

    CUDA graphs are captured per (batch, height, width, prompt): a graph
    replays fixed buffers, so the pixels are copied into its input and its
    outputs are overwritten by the next replay (on the same stream, after
    this batch's scores were computed from them).
    """

    def __init__(self, model, device: torch.device, *, compile: bool, cuda_graphs: bool) -> None:
        self.model = model
        self.compiled = None
        self.graphs: dict[tuple, tuple] | None = {} if cuda_graphs and device.type == "cuda" else None
        if cuda_graphs and device.type != "cuda":
            logger.warning("cuda_graphs needs a CUDA device; running without")
        if compile:
            try:
                self.compiled = torch.compile(forward_with_text, dynamic=False)
            except Exception as error:  # e.g. no compiler toolchain
                logger.warning("torch.compile unavailable (%s); running eagerly", _first_line(error))

    def __call__(self, pixels: torch.Tensor, text: TextEncoding) -> RawOutput:
        if self.graphs is not None:
            try:
                return self._replay(pixels, text)
            except Exception as error:
                logger.warning("CUDA graph capture failed (%s); running without", _first_line(error))
                self.graphs = None
        if self.compiled is not None:
            try:
                return self.compiled(self.model, pixels, text)
            except Exception as error:
                logger.warning("compiled forward failed (%s); running eagerly", _first_line(error))
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


def _check_frame(frame, index: int) -> np.ndarray:
    frame = getattr(frame, "image", frame)
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        shape = getattr(frame, "shape", type(frame).__name__)
        dtype = getattr(frame, "dtype", "")
        raise ValueError(f"frames[{index}]: expected (H, W, 3) uint8 RGB array, got {shape} {dtype}".rstrip())
    return np.ascontiguousarray(frame)
