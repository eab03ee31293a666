"""Fit a digital crowd once, for a study: the reference of every task, the crowd, its validation numbers.

:func:`task_references` asks the LLM about each task (with the study's question in the prompt);
:func:`validate` holds out a share of the training people and tasks, fits the crowd on the rest and
measures how close it comes to the held-out real people -- next to the global baseline and the noise
ceiling -- and sizes the interval for a real crowd's mean (:func:`interval_facts`: the split-conformal
interval of :class:`~crowdllm.evaluate.theory.SplitConformal`, whose half-width grows with the task's
spread and shrinks with the real crowd's size; sized on half of the held-out tasks, its coverage
measured on the other half); :func:`fit_study` does both and returns the crowd and the facts for its
model card.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.errors import ConfigError, CrowdDataError
from crowdllm.study.kinds import sampleable
from crowdllm.study.question import Question

#: Target coverage of the interval for a real crowd's mean.
INTERVAL_LEVEL = 0.9
#: Virtual people per held-out task when measuring the crowd's mean for the interval.
_INTERVAL_PEOPLE = 200


def reference_kind(label: LabelSpec) -> tuple[str, dict[str, Any]]:
    """(compute_references kind, its extra arguments) for a label."""
    kind = sampleable(label).kind_
    if kind.rating and (label.scale is None or not all(float(v).is_integer() for v in label.scale)):
        raise ConfigError("an LLM rating reference needs a whole-number label scale (--kind ordinal --scale 1-5), "
                          "or pass --reference FILE")
    return kind.reference_kind, kind.reference_args(label)


def needs_text(tasks: pd.DataFrame, what: str) -> None:
    """One-line error when the tasks have no text (references and the crowd read it)."""
    if "text" not in tasks.columns or tasks["text"].isna().all():
        raise CrowdDataError(f"{what} reads the task texts, and this data has none: give --tasks FILE "
                             "--task-map task=ID,text=TEXT (or --map text=COLUMN)", column="text")


def task_references(tasks: pd.DataFrame, label: LabelSpec, llm: Any, *, question: Question | None = None,
                    default_template: Any = None, strategy: str | None = None, progress: bool = True,
                    seed: int = 0) -> pd.DataFrame:
    """LLM references (index task; ``y_ref`` + ``p_*``) for ``tasks`` (``task``, ``text``), through the
    backend's disk cache, with the study's question in the prompt."""
    from crowdllm.llm.reference import compute_references

    needs_text(tasks, "the LLM reference")
    kind, extra = reference_kind(label)
    if strategy is None:
        strategy = "logprob" if getattr(llm, "supports_logprobs", False) else "zero-shot"
    template = (question or Question()).template(label, default_template)
    refs = compute_references(tasks[["task", "text"]], llm, kind=kind, strategy=strategy, template=template,
                              progress=progress, seed=seed, **extra)
    refs.index = refs.index.astype(str)
    return refs


def profile_summary(ds: CrowdDataset) -> dict[str, str]:
    """Each profile attribute: its categories (with counts) or its numeric range."""
    out: dict[str, str] = {}
    for col in ds.profile_columns:
        values = ds.workers[col].dropna()
        if values.dtype.kind in "biuf":
            out[col] = f"numeric {values.min():g}..{values.max():g}" if len(values) else "numeric (all missing)"
        elif values.nunique() > 30:
            out[col] = f"{values.nunique()} distinct values (free text)"
        else:
            counts = values.astype(str).value_counts()
            out[col] = ", ".join(f"{v} ({int(c)})" for v, c in counts.items())
    return out


def _metric_names(label: LabelSpec) -> tuple[str, list[str], list[tuple[str, str]]]:
    """(aggregator, headers, [(aggregator, metric)]) of the validation table for a label kind."""
    if label.kind_.nominal:
        return "mv", ["error rate (mv)", "Avg TVD"], [("mv", "error_rate"), ("-", "avg_tvd")]
    return "mean", ["MAE (mean)", "Avg WD"], [("mean", "mae"), ("-", "avg_wd")]


def numeric_values(labels: pd.Series, label: LabelSpec) -> np.ndarray | None:
    """Labels as numbers for a crowd mean (categories that are number codes count), else None."""
    if not label.kind_.nominal:
        return pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float)
    values = pd.to_numeric(pd.Series(np.asarray(labels, dtype=object)), errors="coerce")
    cats = pd.to_numeric(pd.Series(list(label.categories or ())), errors="coerce")
    if cats.isna().any():
        return None
    return values.to_numpy(dtype=float)


def interval_facts(crowd: Any, tasks: pd.DataFrame, gold: pd.DataFrame, label: LabelSpec, *, level: float,
                   seed: int) -> dict[str, Any] | None:
    """The interval for a real crowd's mean, sized on held-out tasks (``gold``: their real answers as
    numbers, ``task``, ``label``) with :class:`~crowdllm.evaluate.theory.SplitConformal`: the mean and
    variance of each task's answers from a large virtual crowd, fitted at ``level`` on a random half of
    the tasks, its coverage measured on the other half (each at its real crowd's size), and fitted again
    on all of them for what is saved. None with fewer than 6 held-out tasks."""
    from crowdllm.evaluate.theory import ConformalInputs, SplitConformal

    many = crowd.sample(tasks, n_people=_INTERVAL_PEOPLE, random_state=seed + 2, include_profile=False)
    virt = numeric_values(many["label"], label)
    if virt is None:
        return None
    moments = pd.Series(virt).groupby(many["task"].astype(str).to_numpy()).agg(["mean", "var"])
    moments["var"] = moments["var"].fillna(0.0)
    gold = gold.assign(task=gold["task"].astype(str), label=pd.to_numeric(gold["label"], errors="coerce"))
    gold = gold[gold["label"].notna()]
    ids = np.array(sorted(set(gold["task"]) & set(moments.index[moments["mean"].notna()])))
    gold = gold[gold["task"].isin(set(ids))]
    order = np.random.default_rng(seed + 3).permutation(len(ids))
    half = len(ids) // 2
    if half < 3:
        return None
    alpha = 1.0 - level
    cal, check = set(ids[order[:half]]), ids[order[half:]]
    checked = ConformalInputs(moments.loc[sorted(cal)], gold[gold["task"].isin(cal)], moments.loc[check],
                              gold[gold["task"].isin(set(check))], _INTERVAL_PEOPLE).report(alpha)
    conf = SplitConformal(alpha=alpha).fit(moments.loc[ids], gold)
    people = float(gold.groupby("task").size().median())
    var_median = float(moments.loc[ids, "var"].median())
    return {"level": level, "tau": conf.tau_, "q": conf.q_, "calibration_tasks": conf.n_calibration_,
            "coverage": checked.summary["coverage"], "n_check": int(len(check)), "people_per_task": people,
            "var_median": var_median, "virtual_people": _INTERVAL_PEOPLE,
            # the typical half-width (median task variance, real crowds of people_per_task); cards before
            # the interval by crowd size held one half-width for every task under this name
            "halfwidth": float(conf.half_width(var_median, people))}


def _score_split(ds: CrowdDataset, reference: pd.DataFrame | None, make_crowd: Callable[[], Any], *, by: str,
                 seed: int, test_size: float, level: float | None) -> dict[str, Any] | None:
    from crowdllm.data.splits import split_dataset
    from crowdllm.evaluate.baselines import GlobalDistribution
    from crowdllm.evaluate.metrics import evaluate_predictions
    from crowdllm.evaluate.noise import noise_ceiling

    try:
        split = split_dataset(ds, by=by, test_size=test_size, random_state=seed)  # type: ignore[arg-type]
    except CrowdDataError:
        return None
    train, test = split.train, split.test
    gold = test.responses[["task", "worker", "label"]].reset_index(drop=True)
    tasks = test.tasks[test.tasks["task"].isin(set(gold["task"]))]
    crowd = make_crowd().fit(train, reference)
    pairs = gold[["task", "worker"]]
    pred = crowd.sample(tasks, profiles=test.workers, pairs=pairs, random_state=seed + 1, include_profile=False)
    base = GlobalDistribution().fit(train).sample(tasks, test.workers, pairs=pairs, random_state=seed + 1)
    agg, headers, keys = _metric_names(ds.label)

    def pick(frame: pd.DataFrame) -> dict[str, float]:
        got = {(a, m): float(v) for a, m, v in frame[["aggregator", "metric", "value"]].itertuples(index=False)}
        return {h: got.get(k, float("nan")) for h, k in zip(headers, keys, strict=True)}

    pred = pred.assign(task=pred["task"].astype(str), worker=pred["worker"].astype(str))
    label = ds.label  # number-coded categories (-1/1) are scored as categories (metrics.label_values)
    table = {"crowd": pick(evaluate_predictions(pred, gold, label, aggregators=[agg])),
             "global": pick(evaluate_predictions(base, gold, label, aggregators=[agg]))}
    ceiling = noise_ceiling(gold, label, full=ds.responses, aggregators=[agg], random_state=seed)
    table["noise-ceiling"] = pick(ceiling[ceiling["method"] == "noise-ceiling"])
    out: dict[str, Any] = {"split": by, "n_tasks": int(gold["task"].nunique()),
                           "n_people": int(gold["worker"].nunique()), "n_responses": len(gold),
                           "metrics": headers, "table": table}
    real = numeric_values(gold["label"], ds.label)
    if level is not None and real is not None and not ds.label.kind_.votes:
        iv = interval_facts(crowd, tasks, gold.assign(label=real), ds.label, level=level, seed=seed)
        if iv is not None:
            out["interval"] = iv
    return out


def validate(ds: CrowdDataset, reference: pd.DataFrame | None, make_crowd: Callable[[], Any], *, seed: int = 0,
             test_size: float = 0.2, level: float = INTERVAL_LEVEL) -> dict[str, Any] | None:
    """Validation numbers (None when the data are too small to hold some out).

    Two splits of the training data: held-out people on held-out tasks (``by="both"``: the hardest case)
    and held-out tasks with all their people (``by="task"``: what ``crowd sample`` does for new tasks); the
    interval for a real crowd's mean is sized on the second (its tasks keep all their real raters)."""
    if ds.n_workers < 10 or ds.n_tasks < 10:
        return None
    both = _score_split(ds, reference, make_crowd, by="both", seed=seed, test_size=test_size, level=None)
    by_task = _score_split(ds, reference, make_crowd, by="task", seed=seed, test_size=test_size, level=level)
    if both is None and by_task is None:
        return None
    out = dict(both or by_task)  # type: ignore[arg-type]
    out["seed"] = seed
    if both is not None and by_task is not None:
        out["by_tasks"] = {k: v for k, v in by_task.items() if k != "interval"}
    if by_task is not None and "interval" in by_task:
        out["interval"] = by_task["interval"]
    return out


def fit_study(ds: CrowdDataset, reference: pd.DataFrame | None, *, crowd_params: Mapping[str, Any] | None = None,
              seed: int = 0, validation: bool = True, say: Callable[[str], None] | None = None
              ) -> tuple[Any, dict[str, Any]]:
    """Fit the crowd on all of ``ds`` (after measuring it on a held-out part); returns (crowd, card facts)."""
    from crowdllm.crowd import DigitalCrowd

    say = say or (lambda _msg: None)
    needs_text(ds.tasks, "the digital crowd")
    sampleable(ds.label)  # free text: one error naming the kind
    params = {"random_state": seed, **dict(crowd_params or {})}

    def make() -> Any:
        return DigitalCrowd(**params)

    card: dict[str, Any] = {}
    if validation:
        t0 = time.perf_counter()
        say("measuring the crowd on held-out training people and tasks ...")
        card["validation"] = validate(ds, reference, make, seed=seed)
        say(f"  validation done in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    say(f"fitting the crowd on {ds.n_responses:,} answers ...")
    crowd = make().fit(ds, reference)
    card["training_seconds"] = time.perf_counter() - t0
    say(f"  fitted in {card['training_seconds']:.1f} s")
    card["embedder"] = getattr(crowd, "embedder_name_", str(params.get("embedder", "auto")))
    card["kappa"] = float(getattr(crowd, "kappa_", float("nan")))
    return crowd, card
