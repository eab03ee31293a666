"""What a pipeline is: its settings, its methods (pipeline, variants, single-LLM baseline), its
evaluation, and the outcome of running one method on one input."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from crowdllm.errors import ConfigError

Example = Mapping[str, Any]


@dataclass(frozen=True)
class Settings:
    """Crowd sizes and limits shared by all pipelines (each uses the ones it lists in ``uses``).

    Defaults are small so a pipeline finishes in about a minute per input on the embedded model."""

    workers: int = 3       #: workers asked in parallel for a generative microtask (ideas, facts, fixes)
    voters: int = 3        #: workers in each vote / verification
    agree: int = 2         #: Find-Fix-Verify: workers that must mark a region for it to become a patch
    rounds: int = 3        #: iterative process: improve-and-vote rounds (and parallel candidates)
    max_parts: int = 3     #: sections, patches, subtasks, associations worked on
    max_depth: int = 2     #: Price-Divide-Solve: deepest level that may still be split
    max_tokens: int = 160  #: longest answer of any one call
    temperature: float = 0.7  #: sampling temperature of every worker
    #: how a comparison of two versions is read: "answers" (sampled letters, both orders, a vote counts
    #: when it agrees with itself) or "logprobs" (letter probabilities averaged over both orders)
    compare_by: str = "answers"

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "compare_by":
                if v not in ("answers", "logprobs", "checklist"):
                    raise ConfigError(f"setting compare_by={v!r} must be 'answers', 'logprobs' or 'checklist'")
                continue
            if f.name == "temperature":
                if not isinstance(v, int | float) or not 0 <= v <= 2:
                    raise ConfigError(f"setting temperature={v!r} must be a number in 0..2")
                continue
            low = 0 if f.name == "max_depth" else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ConfigError(f"setting {f.name}={v!r} must be a whole number >= {low}")

    def updated(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with ``overrides`` applied; values may be strings ("5", "0.3"); unknown names fail."""
        known = {f.name: f for f in fields(self)}
        new: dict[str, Any] = {}
        for key, value in overrides.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"unknown pipeline setting '{key}' (known: {', '.join(known)})")
            if value is None:
                continue
            cast = {"temperature": float, "compare_by": str}.get(name, int)
            try:
                new[name] = cast(value)
            except (TypeError, ValueError):
                raise ConfigError(f"setting {key}={value!r} is not a {cast.__name__}") from None
        return replace(self, **new)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Method = Callable[..., Any]  # (run, example, settings) -> output


@dataclass(frozen=True)
class PipelineSpec:
    """One of the seven pipelines."""

    name: str
    title: str
    reference: str
    summary: str
    input_key: str                   #: the example field that holds the input ("text", "topic", ...)
    run: Method                      #: the crowd pipeline
    baseline: Method                 #: one prompt to one model for the whole task
    evaluate: Callable[..., dict[str, Any]]  #: (evaluator, example, output) -> metrics incl. "quality"
    render: Callable[[Any], str]     #: output -> readable text
    empty: Callable[[Example], Any]  #: the output when nothing at all was produced (budget at once)
    uses: tuple[str, ...]            #: the Settings fields it reads
    variants: Mapping[str, Method] = field(default_factory=dict)  #: other crowd designs to compare
    editing: bool = False            #: takes POPQUORN email originals as real inputs
    metrics: tuple[str, ...] = ()    #: the evaluation columns shown in comparison tables
    judged: bool = True              #: its ``quality`` needs the rater crowd (False: an exact score)

    @property
    def methods(self) -> list[str]:
        return ["pipeline", *self.variants, "baseline"]

    def method(self, name: str) -> Method:
        if name == "pipeline":
            return self.run
        if name == "baseline":
            return self.baseline
        if name in self.variants:
            return self.variants[name]
        raise ConfigError(f"pipeline '{self.name}' has no method '{name}' (known: {', '.join(self.methods)})")

    def from_text(self, text: str, **extra: Any) -> dict[str, Any]:
        """An example made from a user's plain-text input."""
        text = text.strip()
        if not text:
            raise ConfigError(f"the input for pipeline '{self.name}' is empty")
        return {"id": "input", self.input_key: text, **extra}


@dataclass
class Outcome:
    """What one method produced on one input, with its cost."""

    pipeline: str
    method: str
    example_id: str
    output: Any
    text: str
    complete: bool
    notes: list[str]
    usage: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    trace_path: str | None = None
    unchanged: bool = False  #: editing pipelines: the output equals the input text

    @property
    def status(self) -> str:
        from crowdllm.pipelines.runner import status_of

        return status_of(self.complete, self.unchanged)
