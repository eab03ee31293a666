"""``crowdllm crowd``: fit a digital crowd once, then read its card, sample it, ask it.

- ``crowd fit DATA [data flags] --out DIR [--question Q --levels "-1=not toxic,1=toxic" | --template T ...]``
  computes the LLM reference of every task (shared backend flags; cached), fits the crowd, measures it
  on held-out training people and tasks, and saves it with ``CARD.md`` + ``card.json``. ``--template``
  (a packaged name or a .toml/.json file) repeated gives several wordings, averaged (one call per task
  each); the card records them and new tasks of ``sample``/``ask`` are asked with the same ones.
- ``crowd info DIR`` prints the card (and checks the saved crowd is whole).
- ``crowd sample DIR --tasks new.csv [--task-map ...] (--people N | --profiles FILE | --targets FILE)
  [--real answers.csv] --out answers.parquet [--summary summary.csv]`` writes the virtual answers in chunks.
- ``crowd ask DIR "text" [--people 500] [--by gender]`` prints the answer distribution of one new question.

A thin shell over :mod:`crowdllm.study`; every user error is one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import typer

from crowdllm.cli._backend import BackendOptions, as_flags, with_backend_options
from crowdllm.cli._data_options import DataOptions, with_data_options
from crowdllm.errors import ConfigError, CrowdDataError

_QUESTION_HELP = "The question people answered, e.g. \"Is this comment toxic?\" (goes into the LLM prompt)."
_LEVELS_HELP = "What each answer means, e.g. \"-1=not toxic,1=toxic\" (goes into the LLM prompt)."


def _err(line: str) -> None:
    typer.echo(line, err=True)


# ------------------------------------------------------------------------------ helpers
def _backend_record(opts: BackendOptions) -> dict[str, Any]:
    return {"base_url": list(opts.base_url), "model": opts.model, "model_path": opts.model_path,
            "endpoint": opts.endpoint, "hidden_states": opts.hidden_states}


def _backend_from_card(opts: BackendOptions, card: dict[str, Any]) -> BackendOptions:
    """The crowd's own backend unless the user named one (so new tasks get comparable references)."""
    rec = (card.get("reference") or {}).get("backend_flags") or {}
    if opts.base_url or opts.model_path or opts.model or not rec:
        return opts
    opts.base_url = list(rec.get("base_url") or [])
    opts.model, opts.model_path = rec.get("model"), rec.get("model_path")
    opts.endpoint = rec.get("endpoint") or opts.endpoint
    return opts


def _load_crowd(directory: Path) -> tuple[Any, dict[str, Any]]:
    from crowdllm.crowd import DigitalCrowd
    from crowdllm.study.card import read_card

    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such crowd folder (write one with 'crowdllm crowd fit ... --out {directory}')")
    crowd = DigitalCrowd.load(directory)
    card = read_card(directory)
    return crowd, card


def _publish(tmp: Path, out: Path) -> None:
    """Move a finished folder onto ``out`` (an older crowd there is replaced only once the new one is whole)."""
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / "crowd.json").exists()):
            raise ConfigError(f"--out {out}: exists and is not a crowd folder; choose another --out")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _references_for(crowd: Any, card: dict[str, Any], tasks: Any, opts: BackendOptions, seed: int,
                    progress: bool) -> Any:
    """References for tasks the crowd has none for (asked of the crowd's backend; cached)."""
    import pandas as pd

    from crowdllm.llm.reference import STRATEGIES
    from crowdllm.study.fit import task_references
    from crowdllm.study.question import Question

    if not crowd.has_reference_:
        return None
    need = tasks[~tasks["task"].isin(set(crowd.reference_.index))]
    if len(need) == 0:
        return None
    ref_info = card.get("reference") or {}
    opts = _backend_from_card(opts, card)
    opts.hidden_states = crowd.state_.hidden_basis is not None  # a crowd that reads hidden states needs them
    strategy = ref_info.get("strategy")  # "?" when the crowd was fitted on a file that did not say
    with opts.session(seed=seed, quiet=not progress) as llm:
        try:
            refs = task_references(need, crowd.label_, llm, question=Question.from_dict(card.get("question")),
                                   default_template=ref_info.get("template"),
                                   strategy=strategy if strategy in STRATEGIES else None, progress=progress,
                                   seed=seed)
        except ConfigError as err:  # e.g. the card's wordings, asked of a backend without log-probs
            raise as_flags(err, {"template": "the crowd's --template"}) from None
    return pd.DataFrame(refs[_reference_columns(refs)])


def _reference_columns(refs: Any) -> list[str]:
    """What the crowd reads of a reference table: ``y_ref``, the answer shares, the hidden state."""
    from crowdllm.crowd.reference import hidden_columns

    return ["y_ref", *[c for c in refs.columns if str(c).startswith("p_")], *hidden_columns(refs)]


def _check_meta(card: dict[str, Any], tasks: Any, source: str | None) -> Any:
    """The task metadata the crowd reads (``--meta`` at fit time) must come with the new tasks."""
    meta = list((card.get("crowd") or {}).get("meta_columns") or [])
    missing = [c for c in meta if c not in tasks.columns]
    if missing:
        where = f"--tasks {source}" if source else "'crowd ask' (text only)"
        raise CrowdDataError(f"this crowd reads the task metadata {', '.join(missing)} (fitted with --meta); "
                             f"{where} does not give it", file=source, column=missing[0])
    return tasks[["task", "text", *meta]]


def _parse_by(card: dict[str, Any], by: str | None) -> None:
    if by is not None and by not in (card.get("profiles") or {}):
        known = ", ".join(card.get("profiles") or {}) or "none"
        raise ConfigError(f"--by: '{by}' is not a profile attribute of this crowd (attributes: {known})")


# ------------------------------------------------------------------------------ commands
# ------------------------------------------------------------------------------ commands
@with_backend_options
@with_data_options
def fit_cmd(
    data: str = typer.Argument(..., help="A registered data set name or your responses file."),
    out: Path = typer.Option(..., "--out", help="Folder to write the crowd and its card to."),
    question: str = typer.Option(None, "--question", help=_QUESTION_HELP),
    levels: str = typer.Option(None, "--levels", help=_LEVELS_HELP),
    template: list[str] = typer.Option(None, "--template", help="A prompt template instead: a packaged name "
                                       "(crowdllm.llm.prompts.available_templates()) or a .toml/.json file; "
                                       "repeat it for several wordings, averaged (log-prob references; one "
                                       "LLM call per task each, for new tasks too)."),
    reference: Path = typer.Option(None, "--reference", help="Reuse references (CSV/Parquet from 'crowdllm "
                                   "reference' or a crowd folder's references.csv); missing tasks are asked."),
    strategy: str = typer.Option(None, "--strategy", help="Reference strategy: logprob, zero-shot, "
                                 "self-consistency (default: logprob where the backend has log-probs)."),
    limit_tasks: int = typer.Option(None, "--limit-tasks", help="Fit on a seeded random subset of this many tasks."),
    epochs: int = typer.Option(200, "--epochs", help="Most training epochs of the belief model."),
    embedder: str = typer.Option("auto", "--embedder", help="Task text embedder: auto, minilm or hashing."),
    meta: str = typer.Option(None, "--meta", help="Task metadata columns the crowd reads besides the text "
                             "(comma-separated; new tasks must then carry them). Default: none."),
    validation: bool = typer.Option(True, "--validation/--no-validation",
                                    help="Measure the crowd on held-out training people and tasks first."),
    hidden_states: bool = typer.Option(False, "--hidden-states", help="Also read the embedded model's hidden "
                                       "state at the answer position of each reference (a richer task reading, "
                                       "same calls; new tasks then get it too)."),
    crowd_param: list[str] = typer.Option(None, "--crowd-param", help="A DigitalCrowd hyper-parameter "
                                          "KEY=VALUE (repeat), e.g. --crowd-param ensemble=1 (one belief "
                                          "network: faster) --crowd-param J=10; recorded in the card."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
    data_options: DataOptions = None,  # type: ignore[assignment]
    backend_options: BackendOptions = None,  # type: ignore[assignment]
) -> None:
    """Fit a digital crowd on DATA and save it with its model card."""
    from crowdllm.data import REGISTRY
    from crowdllm.study.card import CARD_MD
    from crowdllm.study.fit import fit_study

    started = time.perf_counter()
    q = _fit_question(question, levels, template or [], strategy, out, limit_tasks, epochs)
    extra = _fit_crowd_params(crowd_param)
    ds = data_options.load(data)
    meta_columns = _check_fit_data(ds, q, reference, meta)
    if data not in REGISTRY and not q.given:
        _err("warning: no --question: the LLM reference is told only the allowed answers, not what was "
             "asked; pass --question \"...\" (and --levels) so it knows")
    if limit_tasks is not None and limit_tasks < ds.n_tasks:
        import numpy as np

        rng = np.random.default_rng(seed)
        keep = sorted(rng.choice(ds.tasks["task"].astype(str).to_numpy(), size=limit_tasks, replace=False))
        ds = ds.subset(tasks=keep)
        ds = ds.subset(workers=ds.responses["worker"].unique())  # the people of those tasks only
    say = (lambda m: _err(m)) if progress else (lambda _m: None)
    backend_options.hidden_states = hidden_states
    refs, ref_info = _fit_references(ds, data, q, reference, strategy, backend_options, seed, progress, say)
    keep_cols = _reference_columns(refs)
    params = {"epochs": epochs, "embedder": embedder, "meta_columns": meta_columns, **extra}
    crowd, facts = fit_study(ds, refs[keep_cols], crowd_params=params, seed=seed, validation=validation, say=say)
    card = _fit_card(ds, data, q, refs, ref_info, params, facts, limit_tasks=limit_tasks, seed=seed)
    _write_crowd(out, crowd, refs[keep_cols], card)
    typer.echo((out / CARD_MD).read_text(encoding="utf-8"))
    typer.echo(f"wrote {out}/ (crowd, {CARD_MD}, card.json, references.csv) in {time.perf_counter() - started:.1f} s")


def _fit_crowd_params(items: list[str] | None) -> dict[str, Any]:
    """``--crowd-param KEY=VALUE`` of ``crowd fit``, checked before anything is loaded (what has its own
    flag is set by that flag)."""
    from crowdllm.cli._options import parse_crowd_params
    from crowdllm.crowd import DigitalCrowd

    extra = parse_crowd_params(items)
    own = {"epochs": "--epochs", "embedder": "--embedder", "meta_columns": "--meta", "random_state": "--seed"}
    for key in extra:
        if key in own:
            raise ConfigError(f"--crowd-param {key}=...: set it with {own[key]}")
    try:
        DigitalCrowd(**extra)
    except TypeError as err:
        raise ConfigError(f"--crowd-param: {err} (see docs/crowd.md for the crowd's parameters)") from None
    return extra


def _fit_question(question: str | None, levels: str | None, templates: list[str], strategy: str | None,
                  out: Path, limit_tasks: int | None, epochs: int) -> Any:
    """The settings of ``crowd fit`` checked before anything is loaded; returns the Question."""
    from crowdllm.study.question import Question, parse_levels

    if templates and (question or levels):
        raise ConfigError("--template replaces the packaged prompt; put the question in it, or use "
                          "--question/--levels without --template")
    for i, name in enumerate(templates):
        _check_template(name, twice=name in templates[:i])
    if len(templates) > 1 and strategy not in (None, "logprob"):
        raise ConfigError(f"--template: several wordings are averaged for log-prob references only, not with "
                          f"--strategy {strategy} (give one --template, or --strategy logprob)")
    if limit_tasks is not None and limit_tasks < 10:
        raise ConfigError(f"--limit-tasks must be at least 10 (got {limit_tasks})")
    if epochs < 1:
        raise ConfigError(f"--epochs must be at least 1 (got {epochs})")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "crowd.json").exists())):
        raise ConfigError(f"--out {out}: exists and is not a crowd folder; choose another --out")
    return Question(text=" ".join((question or "").split()), levels=parse_levels(levels), templates=list(templates))


def _check_wordings(refs: Any, reference: Path, asked: int) -> None:
    """References averaged over several wordings (``y_ref_1``, ``y_ref_2`` ...) need as many --template
    values, or new tasks would be read with fewer wordings than the training tasks."""
    made = sum(1 for c in refs.columns if str(c).startswith("y_ref_") and str(c)[6:].isdigit())
    if made > 1 and made != asked:
        raise ConfigError(f"--reference {reference}: its references average {made} wordings (y_ref_1 ... "
                          f"y_ref_{made}) and this fit would ask new tasks with {asked}; give the same wordings "
                          "with --template (one per wording, in order)")


def _check_template(name: str, *, twice: bool) -> None:
    """One ``--template``: a packaged name or a readable template file (a file is read, so a bad one is
    one error line now, not after the data are loaded)."""
    from crowdllm.llm.prompts import available_templates, load_template_set

    if twice:
        raise ConfigError(f"--template {name}: given twice (each wording once)")
    path = Path(name)
    if path.suffix.lower() in (".toml", ".json") or path.exists():
        if not path.is_file():
            raise ConfigError(f"--template {name}: no such file")
    elif name not in available_templates():
        raise ConfigError(f"--template {name}: no such file or packaged template (packaged: "
                          f"{', '.join(available_templates())})")
    try:
        load_template_set(name)
    except ConfigError as err:
        raise ConfigError(f"--template: {err}") from None


def _check_fit_data(ds: Any, q: Any, reference: Path | None, meta: str | None) -> list[str]:
    """The data can be fitted: task texts, levels of the question, a reference kind, --meta columns."""
    from crowdllm.study.fit import needs_text, reference_kind

    needs_text(ds.tasks, "the digital crowd")
    q.check(ds.label)
    if reference is None:
        reference_kind(ds.label)
    meta_columns = [c.strip() for c in (meta or "").split(",") if c.strip()]
    for col in meta_columns:
        if col not in ds.tasks.columns or col in ("task", "text"):
            known = [c for c in ds.tasks.columns if c not in ("task", "text")]
            raise ConfigError(f"--meta: '{col}' is not a task metadata column (task metadata: "
                              f"{', '.join(known) or 'none'})")
    return meta_columns


def _fit_references(ds: Any, data: str, q: Any, reference: Path | None, strategy: str | None,
                    backend_options: BackendOptions, seed: int, progress: bool, say: Any) -> tuple[Any, dict[str, Any]]:
    """References of every task: from --reference where it has them, else asked of the backend (cached)."""
    import pandas as pd

    from crowdllm.llm.prompts import available_templates
    from crowdllm.study.fit import task_references

    templates = available_templates()
    default_template = ds.name if ds.name in templates else (data if data in templates else None)
    refs = None
    info: dict[str, Any] = {}
    if reference is not None:
        from crowdllm.llm.reference import load_references

        refs = load_references(reference)
        refs = refs[refs.index.isin(set(ds.tasks["task"]))]
        _check_wordings(refs, reference, max(len(q.templates), 1))
        given = refs["strategy"].dropna() if "strategy" in refs else pd.Series(dtype=object)
        info = {"backend": "file", "model": str(reference),
                "strategy": refs.attrs.get("strategy") or (str(given.iloc[0]) if len(given) else "?")}
    need = ds.tasks[~ds.tasks["task"].isin(set(refs.index))] if refs is not None else ds.tasks
    if len(need):
        say(f"LLM reference for {len(need):,} task(s) (cached answers are free) ...")
        with backend_options.session(seed=seed, quiet=not progress) as llm:
            try:
                new = task_references(need, ds.label, llm, question=q, default_template=default_template,
                                      strategy=strategy, progress=progress, seed=seed)
            except ConfigError as err:
                raise as_flags(err, {"template": "--template"}) from None
        refs = new if refs is None else pd.concat([refs, new])
        info = {"backend": llm.backend, "model": llm.model, "strategy": new.attrs.get("strategy", strategy)}
    assert refs is not None
    info.update(template=q.template(ds.label, default_template) if q.templates else default_template,
                tasks=int(len(refs)),
                missing=int(refs["y_ref"].isna().sum()), backend_flags=_backend_record(backend_options))
    return refs, info


def _fit_card(ds: Any, data: str, q: Any, refs: Any, ref_info: dict[str, Any], params: dict[str, Any],
              facts: dict[str, Any], *, limit_tasks: int | None, seed: int) -> dict[str, Any]:
    from crowdllm import __version__
    from crowdllm.study.fit import profile_summary

    return {
        "crowdllm": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {"name": ds.name, "source": ds.source or data, "responses": ds.n_responses, "tasks": ds.n_tasks,
                 "workers": ds.n_workers, "dropped_rows": int(ds.dropped_rows), "description": ds.description,
                 "limit_tasks": limit_tasks},
        "label": ds.label.to_dict(),
        "question": q.to_dict(),
        "profiles": profile_summary(ds),
        "reference": ref_info,
        "crowd": params,
        "seed": seed,
        **facts,
    }


def _write_crowd(out: Path, crowd: Any, refs: Any, card: dict[str, Any]) -> None:
    """Crowd, references and card into a temporary folder, then moved onto ``out`` (nothing half-written)."""
    from crowdllm.llm.reference import save_references
    from crowdllm.study.card import write_card

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        crowd.save(tmp)
        save_references(refs, tmp / "references.csv")
        write_card(tmp, card)
        _publish(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

def info_cmd(crowd_dir: Path = typer.Argument(..., help="A folder written by 'crowdllm crowd fit'.")) -> None:
    """Print the crowd's model card."""
    from crowdllm.study.card import render_card

    _, card = _load_crowd(crowd_dir)
    typer.echo(render_card(card))

@with_backend_options
def sample_cmd(
    crowd_dir: Path = typer.Argument(..., help="A folder written by 'crowdllm crowd fit'."),
    tasks: str = typer.Option(..., "--tasks", help="The new tasks: a file with an id and a text per row."),
    task_map: str = typer.Option(None, "--task-map", help="Columns of --tasks: task=COL,text=COL."),
    n_people: int = typer.Option(None, "--people", help="Virtual people drawn from the training pool (default 100)."),
    profiles: str = typer.Option(None, "--profiles", help="A file of people: worker + the crowd's attributes."),
    targets: str = typer.Option(None, "--targets", help="JSON target shares {attribute: {level: share}}: the "
                                "pool's joint distribution raked to them."),
    participation: float = typer.Option(1.0, "--participation", help="Share of (task, person) pairs answered."),
    real: str = typer.Option(None, "--real", help="Real answers to some of the new tasks (task, label): the "
                             "crowd moves toward them, shrunk by its kappa."),
    real_map: str = typer.Option(None, "--real-map", help="Columns of --real: task=COL,label=COL."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    out: Path = typer.Option(..., "--out", help="answers.parquet or answers.csv (one row per task and person)."),
    summary: Path = typer.Option(None, "--summary", help="Also write one row per task (.csv or .parquet)."),
    aggregator: str = typer.Option("auto", "--aggregator", help="Decision per task in --summary: mean, median, "
                                   "mv, ds, glad (auto: mean for ratings, mv for categories)."),
    real_crowd: int = typer.Option(None, "--real-crowd", help="The size of the real crowd whose mean the interval "
                                   "is for (default: the card's people per validation task)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
    backend_options: BackendOptions = None,  # type: ignore[assignment]
) -> None:
    """Sample the crowd's answers to new tasks, written in chunks (atomically)."""
    from crowdllm.data.loaders import load_table, parse_column_map, read_tasks
    from crowdllm.study.sample import people, read_real, read_targets, sample_to_file

    started = time.perf_counter()
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out {out}: use a .parquet or .csv file name")
    if summary is not None and summary.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--summary {summary}: use a .parquet or .csv file name")
    if sum(x is not None for x in (n_people, profiles, targets)) > 1 and not (targets and n_people):
        raise ConfigError("give one of --people N, --profiles FILE, --targets FILE (--targets may take --people)")
    if not 0 < participation <= 1:
        raise ConfigError(f"--participation must be in (0, 1], got {participation}")
    if real_crowd is not None and summary is None:
        raise ConfigError("--real-crowd sizes the interval in the per-task summary: give --summary FILE too")
    crowd, card = _load_crowd(crowd_dir)
    _check_real_crowd(card, real_crowd)
    task_frame = _check_meta(card, read_tasks(tasks, task_map), tasks)
    real_frame = None
    if real is not None:
        raw = load_table(real, infer_types=False)
        rmap = parse_column_map(real_map, setting="--real-map", keys=("task", "label"))
        raw = raw.rename(columns={v: k for k, v in rmap.items()})
        real_frame = read_real(raw, crowd.label_, set(task_frame["task"]), source=real)
    prof_frame = None
    if profiles is not None:
        prof_frame = load_table(profiles, infer_types=True)
    target_shares = read_targets(targets) if targets is not None else None
    prof = people(crowd, n_people=n_people, profiles=prof_frame, targets=target_shares, random_state=seed,
                  source=profiles)
    refs = _references_for(crowd, card, task_frame, backend_options, seed, progress)
    iv = (card.get("validation") or {}).get("interval")
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("[bold]sampling tasks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       console=None, transient=False)
        bar.start()
        bar_id = bar.add_task("sample", total=len(task_frame))
    try:
        counts = sample_to_file(crowd, task_frame, prof, refs, out, participation=participation, real=real_frame,
                                random_state=seed, summary=summary, aggregator=aggregator, interval=iv,
                                real_crowd=real_crowd,
                                on_chunk=(lambda done, _t: bar.update(bar_id, completed=done)) if bar else None)
    finally:
        if bar is not None:
            bar.stop()
    mixed = f"; {len(real_frame):,} real answers mixed in on {real_frame['task'].nunique():,} task(s)" \
        if real_frame is not None else ""
    typer.echo(f"wrote {out}: {counts['responses']:,} answers, {counts['tasks']:,} tasks, {counts['people']:,} "
               f"people{mixed}" + (f"; summary {summary}" if summary else "")
               + f" ({time.perf_counter() - started:.1f} s)")

@with_backend_options
def ask_cmd(
    crowd_dir: Path = typer.Argument(..., help="A folder written by 'crowdllm crowd fit'."),
    text: str = typer.Argument(..., help="The new question's text (as a task text, e.g. a comment)."),
    n_people: int = typer.Option(500, "--people", help="Virtual people drawn from the training pool."),
    by: str = typer.Option(None, "--by", help="Split the answers by one profile attribute, e.g. gender."),
    real_crowd: int = typer.Option(None, "--real-crowd", help="The size of the real crowd whose mean the interval "
                                   "is for (default: the card's people per validation task)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    backend_options: BackendOptions = None,  # type: ignore[assignment]
) -> None:
    """Ask the crowd one new question: answer distribution, mean with interval, split by an attribute."""
    import pandas as pd

    if not text.strip():
        raise ConfigError("the question text is empty")
    if n_people < 1:
        raise ConfigError(f"--people must be at least 1 (got {n_people})")
    crowd, card = _load_crowd(crowd_dir)
    _parse_by(card, by)
    _check_real_crowd(card, real_crowd)
    tasks = _check_meta(card, pd.DataFrame({"task": ["ask"], "text": [" ".join(text.split())]}), None)
    refs = _references_for(crowd, card, tasks, backend_options, seed, progress=False)
    _print_ask(crowd, card, tasks, refs, n_people=n_people, by=by, seed=seed, real_crowd=real_crowd)

@with_backend_options
def demo_cmd(
    out: Path = typer.Option(Path("results/demo"), "--out", help="Folder for the results, crowd and report."),
    texts: int = typer.Option(240, "--texts", help="POPQUORN texts in the seeded subset (20% held out)."),
    epochs: int = typer.Option(200, "--epochs", help="Most training epochs of the belief model."),
    embedder: str = typer.Option("auto", "--embedder", help="Task text embedder: auto, minilm or hashing."),
    ask: str = typer.Option("Honestly, people who still drive diesel cars are idiots.", "--ask",
                            help="The new text to ask the fitted crowd."),
    seed: int = typer.Option(0, "--seed", help="Random seed (which texts, which are held out)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress."),
    backend_options: BackendOptions = None,  # type: ignore[assignment]
) -> None:
    """The whole job in minutes: fit a crowd on POPQUORN texts, score it on held-out texts, ask it, report."""
    import pandas as pd

    from crowdllm.report.html import build_report
    from crowdllm.study.demo import FULL_REPRODUCTION, PER_ANSWER, compact_table, run_demo
    from crowdllm.study.fit import task_references

    started = time.perf_counter()
    say = (lambda m: _err(m)) if progress else (lambda _m: None)
    llm = backend_options.open(seed=seed)
    try:
        res = run_demo(llm, out, n_texts=texts, seed=seed, epochs=epochs, embedder=embedder, progress=progress,
                       say=say)
        crowd, card = _load_crowd(res["crowd_dir"])
        tasks = pd.DataFrame({"task": ["ask"], "text": [ask]})
        refs = task_references(tasks, crowd.label_, llm, default_template="popquorn-offensiveness",
                               progress=False, seed=seed)
    finally:
        backend_options.finish(llm, out=out / "results.csv", quiet=not progress)
        close = getattr(llm, "close", None)
        if close is not None:
            close()
    table = compact_table(res["results"])
    typer.echo("")
    typer.echo(f"How close the virtual crowd came to {res['held_out_people']} real people on "
               f"{res['held_out_texts']} held-out texts, scored on each method's answer distribution ({PER_ANSWER} "
               "virtual answers per real one; MAE of the mean and Avg WD: lower is better; CS: higher is better; "
               "the noise ceiling is the floor):")
    typer.echo(table.to_string(float_format=lambda v: f"{v:.3f}"))
    typer.echo("")
    typer.echo(f"Asking the crowd a new text: \"{ask}\"")
    _print_ask(crowd, card, tasks, refs[["y_ref", *[c for c in refs.columns if str(c).startswith("p_")]]],
               n_people=500, by="gender" if "gender" in (card.get("profiles") or {}) else None, seed=seed)
    report = build_report(out, title="crowdllm demo: a digital crowd on POPQUORN offensiveness")
    typer.echo("")
    typer.echo(f"report: {report}")
    typer.echo(f"crowd: {res['crowd_dir']} (try: crowdllm crowd info {res['crowd_dir']})")
    typer.echo(f"full paper reproduction: {FULL_REPRODUCTION[0]}  ({FULL_REPRODUCTION[1]})")
    typer.echo(f"demo done in {time.perf_counter() - started:.1f} s")



def register(app: typer.Typer) -> None:
    crowd_app = typer.Typer(help="Your own study: fit a digital crowd once, then ask it and sample it.",
                            no_args_is_help=True)
    for name, command in (("fit", fit_cmd), ("info", info_cmd), ("sample", sample_cmd), ("ask", ask_cmd),
                          ("demo", demo_cmd)):
        crowd_app.command(name)(command)
    app.add_typer(crowd_app, name="crowd")


def _check_real_crowd(card: dict[str, Any], real_crowd: int | None) -> None:
    """--real-crowd needs an interval sized by crowd size in the card (checked before any work)."""
    if real_crowd is None:
        return
    if real_crowd < 1:
        raise ConfigError(f"--real-crowd must be at least 1 (got {real_crowd})")
    iv = (card.get("validation") or {}).get("interval") or {}
    if not iv:
        raise ConfigError("--real-crowd: this crowd's card has no interval for a real crowd's mean (fitted with "
                          "--no-validation, too few held-out tasks, or answers that are not numbers)")
    if "q" not in iv:
        raise ConfigError(f"--real-crowd: this crowd's card (an older crowdllm) holds one half-width for real crowds "
                          f"of about {iv.get('people_per_task', '?')} people; fit the crowd again (crowdllm crowd "
                          "fit) for an interval by crowd size")


def _print_ask(crowd: Any, card: dict[str, Any], tasks: Any, refs: Any, *, n_people: int, by: str | None,
               seed: int, real_crowd: int | None = None) -> None:
    import pandas as pd

    from crowdllm.study.sample import draw, people, summarize

    prof = people(crowd, n_people=n_people, random_state=seed)
    answers = draw(crowd, tasks, prof, refs, random_state=seed)
    iv = (card.get("validation") or {}).get("interval") or {}
    row = summarize(answers, crowd.label_, interval=iv, real_crowd=real_crowd).iloc[0]
    typer.echo(f"answers of {len(prof)} virtual people:")
    for line in _bars(row, crowd.label_, card):
        typer.echo(line)
    if "mean" in row and pd.notna(row["mean"]):
        interval = (f"  (mean of a real crowd of {row['interval_real_crowd']:g} people: [{row['mean_low']:.2f}, "
                    f"{row['mean_high']:.2f}], {iv['coverage']:.0%} coverage on validation)") \
            if "mean_low" in row else ""
        typer.echo(f"mean: {row['mean']:.2f}{interval}")
    if by is not None:
        typer.echo(f"by {by}:")
        values = answers.copy()
        values[by] = values[by].astype(str)
        for level, part in values.groupby(by, sort=True):
            r = summarize(part, crowd.label_).iloc[0]
            shown = f"mean {r['mean']:.2f}" if "mean" in r and pd.notna(r["mean"]) else \
                ", ".join(f"{str(c).removeprefix('share_')} {r[c]:.0%}" for c in r.index if str(c).startswith("share_"))
            typer.echo(f"  {str(level):<28} n={len(part):<5} {shown}")
    sys.stdout.flush()


def _bars(row: Any, label: Any, card: dict[str, Any]) -> list[str]:
    words = (card.get("question") or {}).get("levels") or {}
    shares = [(str(c).removeprefix("share_"), float(row[c])) for c in row.index if str(c).startswith("share_")]
    if not shares:
        return []
    names = [f"{lvl} {words[lvl]}" if lvl in words else lvl for lvl, _ in shares]
    width = max(len(n) for n in names)
    return [f"  {name:>{width}}  {'#' * int(round(40 * p)):<40} {p:6.1%}" for name, (_, p) in zip(names, shares, strict=True)]
