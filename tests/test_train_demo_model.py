"""The demo model's training script: its fix of transformers' loss targets, and a two-step run end to end."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def train_script():
    sys.path.insert(0, str(ROOT / "samples"))
    spec = importlib.util.spec_from_file_location("train_demo_model", ROOT / "samples" / "train_demo_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_image_is_trained_towards_its_own_phrase_tokens(train_script):
    import torch
    from transformers.loss.loss_grounding_dino import GroundingDinoImageLoss

    # Three images whose prompts have 2, 3 and 1 phrases; each phrase marks its own token column.
    columns = [[1, 2], [3, 4, 5], [6]]
    label_maps = tuple(torch.nn.functional.one_hot(torch.tensor(c), 8) for c in columns)
    outputs = {"logits": torch.zeros(3, 4, 8), "label_maps": label_maps}
    targets = [{"class_labels": torch.tensor([1])}, {"class_labels": torch.tensor([2])}, {"class_labels": torch.tensor([0])}]
    indices = [(torch.tensor([0]), torch.tensor([0]))] * 3
    criterion = GroundingDinoImageLoss.__new__(GroundingDinoImageLoss)
    original = GroundingDinoImageLoss._get_target_classes_one_hot
    try:
        train_script.fix_grounding_loss_targets()
        onehot = GroundingDinoImageLoss._get_target_classes_one_hot(criterion, outputs, targets, indices)
    finally:
        GroundingDinoImageLoss._get_target_classes_one_hot = original
    assert [onehot[i, 0].nonzero().flatten().tolist() for i in range(3)] == [[2], [5], [6]]
    assert onehot[:, 1:].sum() == 0, "unmatched queries have no target"


def test_two_training_steps_save_a_loadable_checkpoint_and_a_log(train_script, tmp_path, monkeypatch):
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
    from transformers.loss.loss_grounding_dino import GroundingDinoImageLoss

    monkeypatch.setattr(GroundingDinoImageLoss, "_get_target_classes_one_hot",
                        GroundingDinoImageLoss._get_target_classes_one_hot)
    out = tmp_path / "model"
    monkeypatch.setattr(sys, "argv", ["train_demo_model.py", "--out", str(out), "--steps", "2", "--batch", "2",
                                      "--image-size", "64", "--eval-images", "2", "--validation-images", "2", "--threads", "1"])
    train_script.main()
    rows = list(csv.DictReader((out / "training_log.csv").open()))
    validations = list(csv.DictReader((out / "validation_log.csv").open()))
    assert [int(v["step"]) for v in validations] == [2] and 0.0 <= float(validations[0]["ap50"]) <= 1.0
    assert [int(r["step"]) for r in rows] == [0, 1] and all(float(r["loss"]) > 0 for r in rows)
    summary = json.loads((out / "eval.json").read_text())
    assert summary["eval_images"] == 2 and 0.0 <= summary["ap50"] <= 1.0
    assert type(AutoModelForZeroShotObjectDetection.from_pretrained(out)).__name__ == "MMGroundingDinoForObjectDetection"
    assert AutoProcessor.from_pretrained(out).tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", "."]) == [101, 102, 1012]


@pytest.mark.parametrize("family", ["grounding-dino", "mm-grounding-dino"])
def test_trained_batch_norms_load_into_the_stock_frozen_layers(train_script, tmp_path, family):
    """Training with real BatchNorm must save a checkpoint whose stock (frozen-BN) model computes the same."""
    import numpy as np
    import torch
    from transformers import AutoModelForZeroShotObjectDetection

    torch.manual_seed(0)
    model = train_script.build_model(family=family)
    assert train_script.thaw_batch_norms(model) > 0
    model.train()
    with torch.no_grad():  # a few training-mode passes move the running statistics off their init
        for _ in range(3):
            model.model.backbone(torch.randn(2, 3, 64, 80) * 3 + 1, torch.ones(2, 64, 80, dtype=torch.long))
    processor = train_script.build_processor(64)
    train_script.save(model, processor, tmp_path)
    stock = AutoModelForZeroShotObjectDetection.from_pretrained(tmp_path).eval()
    assert type(stock) is type(model)
    model.eval()
    inputs = processor(images=np.full((64, 80, 3), 90, np.uint8), text="circle .", return_tensors="pt")
    with torch.no_grad():
        ours, theirs = model(**inputs), stock(**inputs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in stock.modules())
    assert torch.allclose(ours.pred_boxes, theirs.pred_boxes, atol=1e-5)
    assert torch.allclose(ours.logits[:, :, :4], theirs.logits[:, :, :4], atol=1e-4)


def test_thawing_a_saved_model_keeps_what_it_computes(train_script, tmp_path):
    """`--init` fine-tunes a saved model: its thawed BatchNorms start from the saved statistics, not the identity."""
    import numpy as np
    import torch
    from transformers import AutoModelForZeroShotObjectDetection

    torch.manual_seed(0)
    model = train_script.build_model(family="mm-grounding-dino")
    train_script.thaw_batch_norms(model)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model.model.backbone(torch.randn(2, 3, 64, 80) * 3 + 1, torch.ones(2, 64, 80, dtype=torch.long))
    processor = train_script.build_processor(64)
    train_script.save(model, processor, tmp_path)
    stock = AutoModelForZeroShotObjectDetection.from_pretrained(tmp_path).eval()
    inputs = processor(images=np.full((64, 80, 3), 90, np.uint8), text="circle .", return_tensors="pt")
    with torch.no_grad():
        before = stock(**inputs).pred_boxes
        assert train_script.thaw_batch_norms(stock) > 0
        after = stock.eval()(**inputs).pred_boxes
    assert torch.allclose(before, after, atol=1e-5)


def test_all_p_prompts_name_every_class_in_shuffled_order(train_script):
    import numpy as np

    rng = np.random.default_rng(0)
    prompts = [train_script.make_prompt({"circle"}, rng, 0.5, 0.0, all_p=1.0) for _ in range(50)]
    assert all(sorted(p) == sorted(train_script.shapes.CLASSES) for p in prompts)
    assert len({tuple(p) for p in prompts}) > 1, "the order is shuffled"


def test_word_overlap_on_hand_made_features(train_script):
    import torch

    ids = torch.tensor([[101, 7, 1012, 8, 1012, 9, 1012, 102], [101, 7, 1012, 102, 0, 0, 0, 0]])
    features = torch.zeros(2, 8, 3)
    features[0, [1, 3, 5]] = torch.tensor([[1.0, 0, 0], [1.0, 1.0, 0], [0, 0, 2.0]])  # cosines 0.707, 0, 0
    features[0, [0, 2, 4, 6, 7]] = 5.0  # special tokens are not words and must not count
    # Image 1 has a single word: nothing to compare, so only image 0 contributes.
    expected_margin_0 = 2 * 0.5 / 6  # ordered pairs: (1,3) and (3,1) at cosine^2 0.5, out of 3*2
    assert abs(float(train_script.word_overlap(features, ids, 0.0)) - expected_margin_0) < 1e-6
    expected_margin_half = 2 * (2**-0.5 - 0.5) ** 2 / 6
    assert abs(float(train_script.word_overlap(features, ids, 0.5)) - expected_margin_half) < 1e-6
    assert float(train_script.word_overlap(features, ids, 0.8)) == 0.0


def test_word_spread_on_hand_made_features(train_script):
    import torch

    ids = torch.tensor([[101, 7, 1012, 8, 1012, 102]])
    features = torch.zeros(1, 6, 2)
    features[0, 1] = torch.tensor([1.0, 3.0])
    features[0, 3] = torch.tensor([1.0, 1.0])  # dimension 0: no spread; dimension 1: std sqrt(2)
    floor = 1.0
    expected = ((floor - 1e-2) + 0.0) / 2  # sqrt(0 + 1e-4) = 0.01 falls short by 0.99; sqrt(2 + 1e-4) clears the floor
    assert abs(float(train_script.word_spread(features, ids, floor)) - expected) < 1e-4
    # At near-collapse (two words 1e-3 apart) the hinge still pushes them apart, where the cosine penalty has
    # almost no gradient left: why the hinge is the one that can hold a trainable text encoder.
    collapsed = torch.zeros(1, 6, 2)
    collapsed[0, 1] = torch.tensor([1.0, 3.0])
    collapsed[0, 3] = collapsed[0, 1] + 1e-3
    grads = []
    for penalty in (lambda f: train_script.word_spread(f, ids, floor), lambda f: train_script.word_overlap(f, ids, 0.0)):
        f = collapsed.clone().requires_grad_(True)
        penalty(f).backward()
        grads.append(float(f.grad.norm()))
    assert grads[0] > 100 * grads[1], grads


def test_word_choice_scores_the_best_covering_query_over_the_prompts_words(train_script):
    import math

    import torch

    ids = torch.tensor([[101, 7, 1012, 8, 1012, 9, 1012, 102]])  # three one-token phrases: words at 1, 3, 5
    boxes = torch.tensor([[[0.2, 0.2, 0.1, 0.1], [0.7, 0.7, 0.2, 0.2]]])  # query 1 covers the true box
    labels = [{"boxes": torch.tensor([[0.7, 0.7, 0.2, 0.2]]), "class_labels": torch.tensor([2])}]
    logits = torch.full((1, 2, 8), float("-inf"))
    logits[0, :, :8] = 0.0
    logits[0, 0, 5] = 50.0  # query 0 is sure of word 2, but it is not the query on the box
    logits[0, 1, [1, 3, 5]] = torch.tensor([3.0, 3.0, 3.0 + math.log(2)])
    expected = -math.log(2 / 4)  # softmax over the three words: 2 / (1 + 1 + 2)
    assert abs(float(train_script.word_choice(logits, boxes, ids, labels)) - expected) < 1e-5
    # Blind to a component that every word shares, unlike the per-pair focal loss.
    logits[0, 1, [1, 3, 5]] += 10.0
    assert abs(float(train_script.word_choice(logits, boxes, ids, labels)) - expected) < 1e-5
    # Nothing to choose between with one word: zero, and still differentiable.
    lone = train_script.word_choice(logits, boxes.requires_grad_(True), ids[:, [0, 1, 2, 7]], labels)
    assert float(lone) == 0.0 and lone.requires_grad


def test_shape_probe_reads_the_memory_at_the_true_box(train_script):
    import math

    import torch

    # A 64x64 input: levels of 8x8, 4x4, 2x2 and 1x1 positions, flattened one after another.
    memory = torch.zeros(1, 85, 2)
    memory[0, 5 * 8 + 3, 0] = 1.0  # level 0, row 5, column 3: the only place channel 0 is set
    probe = train_script.ShapeProbe(d_model=2, levels=4, classes=6)
    with torch.no_grad():
        probe.head.weight.zero_()
        probe.head.bias.zero_()
        probe.head.weight[1, 0] = 10.0  # class 1 ("square") reads level 0, channel 0, at the box centre
    box = torch.tensor([[(3 + 0.5) / 8, (5 + 0.5) / 8, 0.1, 0.1]])  # centred on that cell
    label = [{"boxes": box, "class_labels": torch.tensor([1])}]
    right = probe(memory, (64, 64), label, [["ring", "square"]])
    assert abs(float(right) - math.log(1 + 5 * math.exp(-10))) < 1e-6
    wrong = probe(memory, (64, 64), label, [["square", "ring"]])  # phrase 1 is now "ring": class 5
    assert abs(float(wrong) - (10 + math.log(1 + 5 * math.exp(-10)))) < 1e-5
    elsewhere = probe(memory, (64, 64), [{"boxes": box.flip(-1), "class_labels": torch.tensor([1])}], [["ring", "square"]])
    assert abs(float(elsewhere) - math.log(6)) < 1e-6
    with pytest.raises(ValueError, match="does not match"):
        probe(memory, (64, 96), label, [["ring", "square"]])


def test_lone_prompts_name_one_class_present_or_absent(train_script):
    import numpy as np

    rng = np.random.default_rng(0)
    prompts = [train_script.make_prompt({"circle"}, rng, 0.5, 0.1, lone_p=1.0) for _ in range(200)]
    assert all(len(p) == 1 for p in prompts)
    named = {p[0] for p in prompts}
    assert "circle" in named and len(named) == 6, named  # the present class and every absent one


@pytest.mark.parametrize("family", ["grounding-dino", "mm-grounding-dino"])
def test_first_stage_loss_trains_the_proposal_heads_that_the_stock_loss_leaves_untouched(train_script, family):
    import numpy as np
    import torch

    torch.manual_seed(0)
    model = train_script.build_model(num_queries=5, family=family).train()
    processor = train_script.build_processor(64)
    text = processor.tokenizer(["circle . square .", "ring ."], padding="longest", return_tensors="pt")
    labels = [{"class_labels": torch.tensor([1, 0]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4]])},
              {"class_labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])}]
    pixels = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 64, 85)).astype(np.float32))
    outputs = model(pixel_values=pixels, labels=labels, **text)

    proposal_heads = ("encoder_output_bbox_embed.layers.2.", "enc_output.", "enc_output_norm.")
    def proposal_grads():
        return {n: p.grad for n, p in model.model.named_parameters() if n.startswith(proposal_heads)}

    train_script.stock_first_stage_loss(outputs.loss_dict, model.config).backward(retain_graph=True)
    assert all(g is None for g in proposal_grads().values()), "the stock first-stage loss reaches these heads now"
    loss = train_script.first_stage_loss(outputs, text["input_ids"], text["attention_mask"], labels, model.config)
    loss.backward()
    grads = proposal_grads()
    assert len(grads) == 6 and all(g is not None and g.abs().sum() > 0 for g in grads.values())

    # It scores the proposals the model itself kept: their boxes are the decoder's starting boxes.
    torch.testing.assert_close(train_script.kept_proposals(outputs, 5)[1], outputs.encoder_pred_boxes)


def test_dense_box_loss_regresses_the_positions_at_a_boxs_centre_on_its_level(train_script):
    import torch

    # 64x64 input, two levels: 8x8 cells (anchor side 0.05) then 4x4 (0.1); 80 positions.
    small = [0.3, 0.6, 0.12, 0.1]  # side sqrt(0.012) = 0.11: level 1 only; centre (0.3, 0.6) -> cell (row 2, column 1)
    large = [0.4, 0.6, 0.3, 0.3]  # side 0.3: no level within 2x, so its closest (level 1); same one cell
    labels = [{"boxes": torch.tensor([small, large]), "class_labels": torch.tensor([0, 1])}]
    elsewhere = torch.tensor([0.7, 0.2, 0.2, 0.2])
    logits = torch.special.logit(elsewhere).repeat(1, 80, 1)
    expected = 5 * (elsewhere - torch.tensor(small)).abs().sum()
    loss = train_script.dense_box_loss(logits, (64, 64), 2, labels)
    assert loss > expected, "a whole L1 term plus a GIoU term for the one positive"

    shared = 64 + 2 * 4 + 1
    logits[0, shared] = torch.special.logit(torch.tensor(small))
    assert float(train_script.dense_box_loss(logits, (64, 64), 2, labels)) < 1e-4, "only that cell, owned by the smaller box"
    logits[0, shared] = torch.special.logit(torch.tensor(large))
    assert float(train_script.dense_box_loss(logits, (64, 64), 2, labels)) > 0.1
    assert float(train_script.dense_box_loss(logits, (64, 64), 2, [{"boxes": torch.zeros(0, 4)}])) == 0.0
