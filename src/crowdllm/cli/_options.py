"""Options shared by ``crowdllm evaluate``, ``analyze`` and ``reproduce``: declared once, parsed once.

``--seeds`` means the same everywhere: a number N (seeds 0..N-1) or a list like ``0,3,7``.
``--option KEY=VALUE`` goes to the method factories as a string; ``--crowd-param KEY=VALUE`` is a
DigitalCrowd hyper-parameter for the crowd methods (numbers and true/false are converted).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from crowdllm.errors import ConfigError

DATASET = typer.Option(..., "--dataset", "-d", help="A registered data set name or your own file.")
SEEDS_HELP = "Number of seeds N (seeds 0..N-1) or a list like 0,3,7; each seed is a new split and sample."
REFERENCE = typer.Option(None, "--reference", help="Precomputed LLM references (CSV/Parquet from "
                         "'crowdllm llm reference'); tasks missing from it are asked of the LLM.")
EMBEDDER = typer.Option(None, "--embedder", help="Task text embedder of the digital crowd: auto, minilm or hashing.")
OPTION = typer.Option(None, "--option", help="KEY=VALUE passed to the method factories (repeat).")
CROWD_PARAM = typer.Option(None, "--crowd-param", help="A DigitalCrowd hyper-parameter KEY=VALUE for the crowd "
                           "methods (repeat), e.g. --crowd-param epochs=50 --crowd-param latent_dim=16.")
PER_ANSWER = typer.Option(0, "--virtual-per-answer", help="Also score each method's answer distribution "
                          "(population protocol) with N virtual answers per real one, e.g. 30; 0: off.")


def parse_names(text: str | None, setting: str) -> list[str] | None:
    """A comma-separated list of names (``--methods``, ``--aggregators``, ``--splits``): None when the
    flag was not given, an error when it names nothing."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{setting}: give at least one name (comma-separated)")
    return items


def check_per_answer(per_answer: int) -> None:
    """``--virtual-per-answer``: 0 (off) or a positive number of virtual answers per real one."""
    if per_answer < 0:
        raise ConfigError(f"--virtual-per-answer: {per_answer} must be 0 (off) or a positive number")


def parse_seeds(text: str) -> list[int]:
    """``"5"`` -> seeds 0..4; ``"3,7,11"`` -> those seeds."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            n = int(text)
            if n < 1:
                raise ValueError
            seeds = list(range(n))
    except ValueError:
        raise ConfigError(f"--seeds: '{text}' is not a positive number of seeds or a list like 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: '{text}' must name distinct seeds")
    return seeds


def _pairs(items: list[str] | None, flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag}: '{item}' is not KEY=VALUE")
        out.append((key.strip(), value.strip()))
    return out


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``--option`` values: ``["a=1"]`` -> ``{"a": "1"}`` (strings; each method reads its own)."""
    return dict(_pairs(items, "--option"))


def parse_crowd_params(items: list[str] | None) -> dict[str, Any]:
    """``["epochs=50", "sigma=0.8", "refit=true"]`` -> ``{"epochs": 50, "sigma": 0.8, "refit": True}``."""
    out: dict[str, Any] = {}
    for key, raw in _pairs(items, "--crowd-param"):
        value: Any = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        if value in ("true", "false"):
            value = value == "true"
        out[key] = value
    return out


def method_options(*, option: list[str] | None = None, crowd_param: list[str] | None = None,
                   reference: Path | None = None, embedder: str | None = None) -> dict[str, Any]:
    """The ``options`` every method factory gets (the LLM is added by whoever opens it)."""
    options: dict[str, Any] = {"_refs": {}, **parse_options(option)}
    if reference is not None:
        from crowdllm.llm.reference import load_references

        options["reference"] = load_references(reference)
    if embedder is not None:
        options["embedder"] = embedder
    if crowd_param:
        options["crowd"] = parse_crowd_params(crowd_param)
    return options
