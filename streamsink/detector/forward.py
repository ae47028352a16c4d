"""The model's forward pass with the text side precomputed: a replica of transformers' own.

Mirrors `GroundingDinoForObjectDetection.forward` (and the MM-Grounding-DINO
copy) of transformers 5.24, line for line from `text_backbone`'s output on;
pyproject pins the range of transformers versions the sinks=0 equality test
(tests/test_detector.py) has proven. A transformers release that changes the
stock forward changes what this must equal: rerun that test before widening
the pin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from streamsink.detector.prompt import TextLayout


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
