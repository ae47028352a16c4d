"""SinkDetector on tiny random checkpoints of both families: equality with the stock model, sinks, caching."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from streamsink.detector.model import (  # noqa: E402
    PREPROCESS_ATOL,
    PREPROCESS_MISMATCH,
    RawOutput,
    SinkDetector,
    TextEncoding,
)
from streamsink.detector.prompt import build_layout  # noqa: E402
from streamsink.errors import ModelNotFoundError, PromptError, UnsupportedModelError  # noqa: E402
from streamsink.types import Detections  # noqa: E402

PROMPT = "dog,tractor"
STOCK_TEXT = "dog. tractor."


@pytest.fixture(scope="module", params=["grounding-dino", "mm-grounding-dino"])
def checkpoint(request):
    name = "tiny_checkpoint" if request.param == "grounding-dino" else "tiny_mm_checkpoint"
    return request.getfixturevalue(name)


@pytest.fixture(scope="module")
def stock(checkpoint):
    model, processor = _load_stock(checkpoint)
    return model, processor


@pytest.fixture(scope="module")
def detector(checkpoint):
    return SinkDetector.from_pretrained(checkpoint, sinks=16, device="cpu")


def _load_stock(path):
    config = transformers.AutoConfig.from_pretrained(path)
    model_class = getattr(transformers, config.architectures[0])
    return model_class.from_pretrained(path).eval(), transformers.AutoProcessor.from_pretrained(path)


def _frames(n=3, height=120, width=160, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


def test_sinks_zero_equals_the_stock_model(checkpoint, stock):
    model, processor = stock
    plain = SinkDetector.from_pretrained(checkpoint, sinks=0, device="cpu")
    frames = _frames(2)
    inputs = processor(images=frames[:1], text=STOCK_TEXT, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**inputs)
    raw = plain.forward(inputs["pixel_values"], PROMPT)
    assert plain.encode_prompt(PROMPT).layout.input_ids.tolist() == inputs["input_ids"][0].tolist()
    assert torch.equal(raw.logits, expected.logits)
    assert torch.equal(raw.pred_boxes, expected.pred_boxes)
    # Batched, the stock model's own BERT runs per row and differs from batch 1 in the last bits.
    inputs = processor(images=frames, text=[STOCK_TEXT] * 2, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**inputs)
    raw = plain.forward(inputs["pixel_values"], PROMPT)
    torch.testing.assert_close(raw.logits, expected.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(raw.pred_boxes, expected.pred_boxes, atol=1e-5, rtol=0)


def test_sinks_zero_detections_are_the_stock_boxes_in_pixels(checkpoint, stock):
    model, processor = stock
    plain = SinkDetector.from_pretrained(checkpoint, sinks=0, device="cpu")
    frame = _frames(1, 90, 200)[0]
    inputs = processor(images=frame, text=STOCK_TEXT, return_tensors="pt")
    inputs["pixel_values"] = plain.preprocess([frame])
    with torch.inference_mode():
        expected = model(**inputs)
    (detections,) = plain.detect([frame], PROMPT, threshold=0.0)
    cx, cy, w, h = expected.pred_boxes[0].unbind(-1)
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * torch.tensor([200, 90, 200, 90])
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, 200)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, 90)
    probs = expected.logits[0, :, :6].sigmoid()
    class_scores = torch.stack([probs[:, 1], probs[:, 3]], -1)  # "dog" and "tractor" tokens
    scores, class_id = class_scores.max(-1)
    keep = scores > 0.0
    order = torch.argsort(scores[keep], descending=True, stable=True)
    np.testing.assert_allclose(detections.xyxy, boxes[keep][order].numpy(), atol=1e-4)
    np.testing.assert_allclose(detections.scores, scores[keep][order].numpy(), atol=1e-6)
    assert detections.class_id.tolist() == class_id[keep][order].tolist()
    assert (detections.xyxy[:, 0::2] <= 200).all() and (detections.xyxy[:, 1::2] <= 90).all()


def test_sinks_add_positions_and_leave_real_class_features_alone(checkpoint, detector):
    plain = detector.with_sinks(0)
    base = plain.encode_prompt(PROMPT)
    sunk = detector.encode_prompt(PROMPT)
    assert sunk.layout.num_tokens == base.layout.num_tokens + 2 * 16
    assert sunk.features.shape[:2] == (1, sunk.layout.num_tokens)
    assert sunk.layout.sink_positions.tolist() == list(range(5, 5 + 32, 2))
    real = list(range(base.layout.num_tokens - 1))  # BERT's phrase mask keeps sinks out of the classes
    torch.testing.assert_close(sunk.features[0, real], base.features[0, real], atol=1e-5, rtol=0)
    torch.testing.assert_close(sunk.features[0, -1], base.features[0, -1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("sink_init", ["mean", "random", "brackets"])
def test_sinks_take_fusion_attention(checkpoint, detector, sink_init):
    from streamsink.detector.explain import fusion_attention

    frame = _frames(1)[0]
    shares = []
    for sinks in (1, 4, 16):
        attention = fusion_attention(detector.with_sinks(sinks, sink_init), frame, PROMPT)
        assert (attention.share.sum(0) <= 1 + 1e-5).all()
        shares.append(float(attention.share[-1].mean()))
    assert 0.05 < shares[0] < shares[1] < shares[2] < 1
    assert shares[2] > 0.2


def test_fusion_attention_rows_sum_to_one(detector):
    raw = detector.forward(detector.preprocess(_frames(1)), PROMPT, output_attentions=True)
    torch.testing.assert_close(raw.fusion_attention[0].sum(-1), torch.ones(raw.fusion_attention[0].shape[:2]))


def test_labels_are_the_prompt_classes_never_sinks(detector):
    for detections in detector.detect(_frames(2), ["dog", "red car", "tractor"], threshold=0.0):
        assert isinstance(detections, Detections)
        assert detections.labels == ("dog", "red car", "tractor")
        assert set(detections.class_names) <= {"dog", "red car", "tractor"}
        assert detections.xyxy.dtype == np.float32 and detections.class_id.dtype == np.int64


def _encoding(layout) -> TextEncoding:
    return TextEncoding(layout, torch.zeros(1), torch.ones(1), torch.ones(1), torch.ones(1),
                        torch.as_tensor(layout.phrase_map()))


def test_scores_average_phrase_tokens_and_sink_winners_are_dropped(detector):
    layout = build_layout(("dog", "red car"), lambda name: [7] * len(name.split()), sinks=2)
    # [CLS] dog . red car . sink . sink . [SEP]
    assert layout.num_tokens == 11
    logits = torch.full((1, 3, 256), -float("inf"))
    logits[0, :, :11] = -10.0
    logits[0, 0, 3], logits[0, 0, 4] = 2.0, 0.0  # red car: mean(0.88, 0.5) = 0.69
    logits[0, 0, 1] = 0.5  # dog 0.62
    logits[0, 1, 1] = 1.0  # dog 0.73 ...
    logits[0, 1, 8] = 3.0  # ... but a sink 0.95: dropped
    logits[0, 2, 2] = 5.0  # a "." alone scores nothing
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.4]] * 3])
    raw = RawOutput(logits, boxes, None, [])
    (detections,) = detector._postprocess(raw, _encoding(layout), 100, 200, 0.3, layout.classes)
    assert detections.class_id.tolist() == [1]
    expected = (torch.sigmoid(torch.tensor(2.0)) + 0.5) / 2
    np.testing.assert_allclose(detections.scores, [expected.item()], rtol=1e-6)
    np.testing.assert_allclose(detections.xyxy, [[80, 30, 120, 70]], atol=1e-4)


def test_a_stock_model_loaded_alongside_is_untouched(checkpoint, stock):
    model, processor = stock
    from transformers.models.grounding_dino import modeling_grounding_dino as gd
    from transformers.models.mm_grounding_dino import modeling_mm_grounding_dino as mm

    watched = [value for module in (gd, mm) for value in vars(module).values() if isinstance(value, type)]
    before = {cls: dict(vars(cls)) for cls in watched}
    functions = {name: getattr(gd, name) for name in dir(gd) if callable(getattr(gd, name))}
    inputs = processor(images=_frames(1), text=STOCK_TEXT, return_tensors="pt")
    with torch.inference_mode():
        expected = model(**inputs)
    patched = SinkDetector.from_pretrained(checkpoint, sinks=16, sink_init="random", device="cpu")
    patched.detect(_frames(2), PROMPT)
    with torch.inference_mode():
        after = model(**inputs)
    assert torch.equal(after.logits, expected.logits) and torch.equal(after.pred_boxes, expected.pred_boxes)
    assert {cls: dict(vars(cls)) for cls in watched} == before
    assert {name: getattr(gd, name) for name in functions} == functions
    fresh = _load_stock(checkpoint)[0].state_dict()
    assert all(torch.equal(value, fresh[key]) for key, value in patched.model.state_dict().items())


def test_text_encoder_runs_once_per_prompt(checkpoint):
    detector = SinkDetector.from_pretrained(checkpoint, sinks=8, device="cpu")
    calls = []
    handle = detector.model.model.text_backbone.register_forward_hook(lambda *args: calls.append(1))
    try:
        detector.detect(_frames(2), PROMPT)
        detector.detect(_frames(1), PROMPT)
        detector.detect(_frames(3), ["dog", "tractor"])
        assert detector.text_encodings == 1 and len(calls) == 1
        detector.detect(_frames(1), "cat")
        detector.detect(_frames(1), "cat")
        assert detector.text_encodings == 2 and len(calls) == 2
    finally:
        handle.remove()


@pytest.mark.parametrize(("height", "width"), [(120, 160), (480, 640), (224, 300), (600, 90), (31, 47)])
def test_preprocessing_matches_the_processor(detector, stock, height, width):
    _, processor = stock
    frames = _frames(2, height, width, seed=height)
    expected = processor.image_processor(images=frames, return_tensors="pt")["pixel_values"]
    ours = detector.preprocess(frames)
    assert ours.shape == expected.shape and ours.dtype == torch.float32
    difference = (ours - expected).abs()
    assert difference.max().item() <= PREPROCESS_ATOL
    assert (difference > 1e-4).float().mean().item() < PREPROCESS_MISMATCH


def test_batch_of_n_equals_n_single_calls(detector):
    frames = _frames(4, seed=3)
    batched = detector.detect(frames, PROMPT, threshold=0.0)
    for frame, together in zip(frames, batched):
        (alone,) = detector.detect([frame], PROMPT, threshold=0.0)
        assert alone.class_id.tolist() == together.class_id.tolist()
        np.testing.assert_allclose(alone.scores, together.scores, atol=1e-5)
        np.testing.assert_allclose(alone.xyxy, together.xyxy, atol=1e-3)


def test_frames_of_several_sizes_keep_their_own_pixels(detector):
    small, large = _frames(1, 60, 80)[0], _frames(1, 240, 320, seed=1)[0]
    mixed = detector.detect([small, large, small], PROMPT, threshold=0.0)
    (alone,) = detector.detect([large], PROMPT, threshold=0.0)
    np.testing.assert_allclose(mixed[1].xyxy, alone.xyxy, atol=1e-3)
    assert mixed[0].xyxy[:, 2].max() <= 80 and mixed[1].xyxy[:, 2].max() > 80
    with pytest.raises(ValueError, match="share one size"):
        detector.preprocess([small, large])


def test_over_long_prompt_is_a_prompt_error(detector):
    classes = [f"class number {i}" for i in range(40)]
    with pytest.raises(PromptError, match=r"needs \d+ text tokens .* at most 256") as info:
        detector.detect(_frames(1), classes)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([np.zeros((10, 10), np.uint8)], r"frames\[0\]: expected \(H, W, 3\) uint8"),
        ([np.zeros((10, 10, 3), np.float32)], "uint8"),
        ([], "empty"),
    ],
)
def test_bad_frames(detector, frames, match):
    with pytest.raises(ValueError, match=match):
        detector.preprocess(frames)


def test_frame_objects_are_accepted(detector):
    from streamsink.types import Frame

    image = _frames(1)[0]
    (from_frame,) = detector.detect([Frame(image, 0, 0.0)], PROMPT)
    (from_array,) = detector.detect([image], PROMPT)
    np.testing.assert_array_equal(from_frame.xyxy, from_array.xyxy)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"sinks": -1}, "sinks must be"), ({"sink_init": "zeros"}, "sink_init must be one of"),
     ({"dtype": "int8"}, "dtype must be one of")],
)
def test_bad_settings(checkpoint, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SinkDetector.from_pretrained(checkpoint, device="cpu", **kwargs)


def test_bad_threshold(detector):
    with pytest.raises(ValueError, match="threshold must be in"):
        detector.detect(_frames(1), PROMPT, threshold=1.5)


def test_missing_local_dir_and_unknown_hub_id(tmp_path):
    for name in (str(tmp_path / "nope"), "./no/such/dir", "no-such-org/no-such-model-xyz"):
        with pytest.raises(ModelNotFoundError, match="--model with a local checkpoint directory") as info:
            SinkDetector.from_pretrained(name)
        assert "\n" not in str(info.value)


def test_config_without_weights_is_model_not_found(checkpoint, tmp_path):
    (tmp_path / "config.json").write_text((checkpoint / "config.json").read_text())
    with pytest.raises(ModelNotFoundError, match="could not find or download"):
        SinkDetector.from_pretrained(tmp_path)


def test_unsupported_checkpoints(checkpoint, tmp_path):
    bert = tmp_path / "bert"
    transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(bert)
    with pytest.raises(UnsupportedModelError, match="model type 'bert' is not supported"):
        SinkDetector.from_pretrained(bert)
    bare = tmp_path / "bare"
    bare.mkdir()
    config = json.loads((checkpoint / "config.json").read_text())
    config["architectures"] = [config["architectures"][0].replace("ForObjectDetection", "Model")]
    (bare / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="detection head"):
        SinkDetector.from_pretrained(bare)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "config.json").write_text(json.dumps({"model_type": "not-a-model"}))
    with pytest.raises(UnsupportedModelError):
        SinkDetector.from_pretrained(junk)


def test_explain_draws_both_panels(detector, tmp_path):
    from streamsink.detector.explain import explain

    result = explain(detector, _frames(1)[0], PROMPT, sinks=8)
    assert result.figure.dtype == np.uint8 and result.figure.ndim == 3 and result.figure.shape[2] == 3
    assert result.classes == ("dog", "tractor") and result.sinks == 8
    assert 0.1 < result.sink_share < 1
    levels = detector.model.config.num_feature_levels
    assert result.sink_share_grid.shape == (levels, detector.model.config.encoder_attention_heads // 2)
    for without, with_sinks in result.class_share.values():
        assert with_sinks < without
    assert result.save(tmp_path / "attention.png").stat().st_size > 1000


def test_import_stays_light():
    code = "import sys, streamsink.detector; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_half_precision_matches_fp32(checkpoint):
    fp32 = SinkDetector.from_pretrained(checkpoint, sinks=16, device="cpu")
    cuda = SinkDetector.from_pretrained(checkpoint, sinks=16, device="cuda")
    assert cuda.dtype == torch.float16
    frames = _frames(2)
    pixels = cuda.preprocess(frames)
    assert pixels.is_cuda and pixels.dtype == torch.float16
    torch.testing.assert_close(pixels.float().cpu(), fp32.preprocess(frames), atol=2e-2, rtol=0)
    ours = cuda.forward(pixels, PROMPT)
    ref = fp32.forward(fp32.preprocess(frames), PROMPT)
    torch.testing.assert_close(ours.pred_boxes.float().cpu(), ref.pred_boxes, atol=5e-2, rtol=0)
    detections = cuda.detect(frames, PROMPT, threshold=0.0)
    assert len(detections) == 2 and all(d.labels == ("dog", "tractor") for d in detections)
