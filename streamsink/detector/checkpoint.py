"""Loading a Grounding DINO family checkpoint (hub id or local directory) with one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path

from streamsink.errors import ModelNotFoundError, UnsupportedModelError

logger = logging.getLogger(__name__)

MODEL_CLASSES = {
    "grounding-dino": "GroundingDinoForObjectDetection",
    "mm-grounding-dino": "MMGroundingDinoForObjectDetection",
}


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
        raise UnsupportedModelError(f"{name}: not a Grounding DINO checkpoint ({first_line(error)})") from error
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


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
