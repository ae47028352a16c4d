"""Probe: INT8 post-training quantisation (NNCF) of the demo model's OpenVINO graph: speed and AP50 cost.

Not part of `make bench` and not a backend option: on the session-9 VM (2-vCPU AMD EPYC) int8 was slower
than f32 and cost 0.165 AP50 (RESULTS.md, 8), far past the 0.02 the issue allowed. Kept so the
measurement can be repeated on another CPU. Needs `pip install nncf` (3.4 was used).

Calibration: 300 shapes-world images (seed 4242); AP50 with all six classes in one prompt on 100 fresh
images (seed 777001), batch 1, the int8 graph swapped in for the f32 one of that input size and prompt.

    python benchmarks/probe_int8.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

DEMO = Path(__file__).resolve().parent.parent / "samples" / "models" / "shapes-gdino"


def main() -> None:
    import nncf
    import openvino as ov

    from streamsink.detector import SinkDetector
    from streamsink.detector.openvino import CPU_CONFIG, _text_arrays
    from streamsink.evaluate import Method, detect_together, pairs, shapes_dataset
    from streamsink.metrics import AbstentionReport
    from streamsink.shapes import CLASSES
    from streamsink.shapes import dataset as shapes_images
    from streamsink.testing.agreement import frames_disagreeing
    from streamsink.types import Detections

    torch.set_num_threads(2)
    detector = SinkDetector.from_pretrained(DEMO, sinks=24, sink_init="brackets", device="cpu", backend="openvino")
    text = detector.encode_prompt(list(CLASSES))
    calibration = [image for image, _ in shapes_images(4242, 300)]
    runner = detector._runner.openvino
    pixels = detector.preprocess(calibration[:1])
    with torch.inference_mode():
        runner(pixels, text)  # converts (or reads) the f32 graph of this size and prompt
    height, width, length = pixels.shape[2], pixels.shape[3], text.features.shape[1]
    graph, spatial_shapes = runner._graphs[(height, width, length)]
    graph = graph.clone()
    graph.reshape({graph.inputs[0]: [1, 3, height, width]})
    text_inputs = _text_arrays(text)
    items = [[detector.preprocess([image]).numpy(), *text_inputs] for image in calibration]
    start = time.time()
    quantised = nncf.quantize(graph, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER, subset_size=300)
    print(f"quantised in {time.time() - start:.0f} s")
    core = ov.Core()
    config = {**CPU_CONFIG, "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2}
    f32 = core.compile_model(graph, "CPU", config).create_infer_request()
    int8 = core.compile_model(quantised, "CPU", config).create_infer_request()
    inputs = [pixels.numpy(), *text_inputs]

    def ms(request, n: int = 30) -> float:
        request.infer(inputs)
        begin = time.perf_counter()
        for _ in range(n):
            request.infer(inputs)
        return (time.perf_counter() - begin) / n * 1e3

    for _ in range(2):  # alternating
        print(f"forward {height}x{width}: f32 {ms(f32):.1f} ms, int8 {ms(int8):.1f} ms")
    samples = shapes_dataset(777001, images=100, clips=0).images
    method = Method("sinks-brackets-24", sinks=24, sink_init="brackets")

    def ap50() -> tuple[float, list[Detections]]:
        found = detect_together(detector, method, samples, CLASSES, threshold=0.01, batch_size=1)
        per_class = {c: [Detections(d.xyxy[d.class_id == k], d.scores[d.class_id == k],
                                    np.zeros(int((d.class_id == k).sum()), np.int64), (c,)) for d in found]
                     for k, c in enumerate(CLASSES)}
        return AbstentionReport(pairs(samples, per_class)).ap50(), found

    ap_f32, found_f32 = ap50()
    runner._requests[(1, height, width, length)] = (int8, spatial_shapes)
    ap_int8, found_int8 = ap50()
    print(f"AP50 (six classes in one prompt, 100 images): f32 {ap_f32:.3f}, int8 {ap_int8:.3f} "
          f"({ap_int8 - ap_f32:+.3f}); frames whose detections differ: {len(frames_disagreeing(found_f32, found_int8))}")


if __name__ == "__main__":
    main()
