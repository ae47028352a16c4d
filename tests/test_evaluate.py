"""`streamsink eval`: methods, datasets, the report's schema, and the CLI around it."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from streamsink.cli import main
from streamsink.evaluate import Method, coco_dataset, evaluate, parse_methods, plot, shapes_dataset

KEYS = {"ap50", "ap50_at_fpr_0.01", "ap50_at_fpr_0.05", "ap50_at_fpr_0.25", "fpr_bg", "neg_frames_with_detection"}


def test_parse_methods():
    assert parse_methods("stock, sinks-random-4,decoy-object") == [
        Method("stock"), Method("sinks-random-4", sinks=4, sink_init="random"), Method("decoy-object", decoy="object")
    ]


@pytest.mark.parametrize("spec", ["sinks-mean", "sinks-zero-4", "sinks-mean-0", "decoy", "best", " , "])
def test_parse_methods_rejects(spec):
    with pytest.raises(ValueError, match="method"):
        parse_methods(spec)


def test_shapes_dataset_is_a_fresh_deterministic_draw():
    a, b = shapes_dataset(3, images=3, clips=1, clip_frames=4), shapes_dataset(3, images=3, clips=1, clip_frames=4)
    assert len(a.images) == 3 and len(a.clips) == 1 and len(a.clips[0]) == 4
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a.images, b.images))
    assert not np.array_equal(a.images[0].image, shapes_dataset(4, images=1, clips=0).images[0].image)
    assert set(a.classes) == {"circle", "square", "triangle", "star", "cross", "ring"}


def test_evaluate_reports_every_method_and_clip_row(tiny_checkpoint, tmp_path):
    from streamsink.detector import SinkDetector

    detector = SinkDetector.from_pretrained(tiny_checkpoint, sinks=0)
    dataset = shapes_dataset(5, images=1, clips=1, clip_frames=2)
    methods = parse_methods("stock,sinks-mean-4,decoy-object")
    result = evaluate(detector, dataset, methods, threshold=0.3, min_score=0.05)
    names = ["stock", "stock (clips)", "stock + smoother (clips)", "sinks-mean-4", "sinks-mean-4 (clips)",
             "sinks-mean-4 + smoother (clips)", "decoy-object", "decoy-object (clips)", "decoy-object + smoother (clips)"]
    assert list(result.figures) == names
    for figures in result.figures.values():
        assert set(figures) == KEYS
        assert figures["fpr_bg"] >= 0 and 0 <= figures["neg_frames_with_detection"] <= 1
    # Sinks change what the model outputs: the stock and sink rows are not copies of each other.
    stock, sunk = result.figures["stock"], result.figures["sinks-mean-4"]
    assert any(a != b and not (a != a and b != b) for a, b in ((stock[k], sunk[k]) for k in stock)), \
        "a figure that is NaN in both rows is no difference"
    path = plot(result, tmp_path / "curve.png")
    assert cv2.imread(str(path)).shape == (600, 900, 3)
    assert json.loads(json.dumps(result.to_json()))["methods"].keys() == set(names)


def write_coco(tmp_path):
    from clips import pattern

    for i in range(2):
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), pattern(i))
    data = {
        "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "tractor"}],
        "images": [{"id": 10, "file_name": "0.jpg"}, {"id": 11, "file_name": "1.jpg"}],
        "annotations": [{"image_id": 10, "category_id": 1, "bbox": [5, 5, 20, 10]}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_dataset(tmp_path):
    dataset = coco_dataset(write_coco(tmp_path))
    assert dataset.classes == ("dog", "tractor")
    assert dataset.images[0].truth["dog"].tolist() == [[5, 5, 25, 15]]
    assert dataset.images[1].truth == {} and dataset.images[0].image.shape == (120, 160, 3)


def test_eval_cli_writes_json_and_plot(tmp_path, tiny_checkpoint, capsys):
    report, curve = tmp_path / "report.json", tmp_path / "curve.png"
    code = main(["eval", "--model", str(tiny_checkpoint), "--dataset", str(write_coco(tmp_path)), "--methods", "stock,sinks-mean-16",
                 "--json", str(report), "--plot", str(curve)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "sinks-mean-16" in out
    figures = json.loads(report.read_text())["methods"]
    assert set(figures) == {"stock", "sinks-mean-16"} and set(figures["stock"]) == KEYS
    assert curve.is_file()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--dataset", "{tmp}/missing.json"], "no such annotation file"),
        (["--methods", "sinks-lots"], "unknown method"),
        (["--min-score", "0.5", "--threshold", "0.3"], "--min-score must be in"),
        (["--dataset", "{bad}"], "not a COCO detection file"),
    ],
)
def test_eval_cli_bad_input(args, needle, tmp_path, tiny_checkpoint, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    args = [a.format(tmp=tmp_path, bad=bad) for a in args]
    assert main(["eval", "--model", str(tiny_checkpoint), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_coco_with_a_missing_category_is_a_clear_error(tmp_path):
    from streamsink.errors import SourceError

    path = write_coco(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(SourceError, match="not a COCO detection file"):
        coco_dataset(path)


def test_plot_styles_keep_a_colour_per_method_and_dash_the_clip_rows():
    import numpy as np

    from streamsink.evaluate import LINE_STYLES, _styled_polyline, plot_style

    assert plot_style("sinks-mean-16") == ("sinks-mean-16", "images")
    assert plot_style("sinks-mean-16 (clips)") == ("sinks-mean-16", "clips")
    assert plot_style("sinks-mean-16 + smoother (clips)") == ("sinks-mean-16", "smoothed clips")
    assert len({LINE_STYLES[kind] for kind in ("images", "clips", "smoothed clips")}) == 3

    canvas = np.zeros((11, 40), np.uint8)
    _styled_polyline(canvas, np.array([[0, 5], [20, 5], [39, 5]], np.int32), 255, 1, (10, 6))
    row = canvas[5] > 128
    # On for 10 px, off for 6, on again: the pattern carries on across the corner at x=20.
    assert row[1:9].all() and not row[11:15].any() and row[17:25].all() and not row[27:31].any() and row[33:39].all()
    solid = np.zeros((11, 40), np.uint8)
    _styled_polyline(solid, np.array([[0, 5], [39, 5]], np.int32), 255, 1, None)
    assert (solid[5, 1:39] > 128).all()
