"""Prompts: the class names a user typed, cleaned and checked."""

from __future__ import annotations

from collections.abc import Sequence

from streamsink.errors import PromptError


def parse_classes(prompt: str | Sequence[str]) -> tuple[str, ...]:
    """Split `"dog, tractor"` (or take a list) into unique, stripped class names.

    Grounding DINO separates phrases with ".", so a class may not contain one;
    an empty result (`" , ,"`) is an error rather than a silent no-op run.
    """
    items = prompt.split(",") if isinstance(prompt, str) else list(prompt)
    classes: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise PromptError(f"prompt classes must be strings, got {type(item).__name__}")
        name = " ".join(item.replace(".", " ").split())
        if name and name.lower() not in (c.lower() for c in classes):
            classes.append(name)
    if not classes:
        raise PromptError(f"prompt names no class: {prompt!r}; pass e.g. --prompt \"dog,tractor\"")
    return tuple(classes)
