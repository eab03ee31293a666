"""The registered public data sets and the functions that build each one from its files.

Tested here (files mirrored beside the project, sha256 pinned):

- ``popquorn-offensiveness``: POPQUORN offensiveness ratings (Pei & Jurgens 2023), ordinal 1-5.
- ``popquorn-email-rewriting``: POPQUORN politer rewrites of emails (free-text answers).
- ``zurich-pb-top5``: Zurich participatory-budgeting lab study (Yang et al. 2024), top-5 of 24 projects.

Listed by URL only (``tested=False``; their files were not available to verify the layout here):
POPQUORN question-answering difficulty and politeness ratings, Amazon Reviews 2023 (Beauty, Musical
Instruments).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.data.loaders import dataset_from_frame, load_table
from crowdllm.data.registry import DataFile, DatasetSpec, register_dataset
from crowdllm.errors import ConfigError, CrowdDataError

POPQUORN_COMMIT = "dbb118c"
POPQUORN_RAW = f"https://raw.githubusercontent.com/Jiaxin-Pei/Potato-Prolific-Dataset/{POPQUORN_COMMIT}"
ZURICH_COMMIT = "1c84f60"
ZURICH_RAW = f"https://raw.githubusercontent.com/ethz-coss/LLM_voting/{ZURICH_COMMIT}"
AMAZON_RAW = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw"

POPQUORN_LICENCE = ("no licence file in the source repository; released with the paper for research use "
                    "— cite Pei & Jurgens (2023)")
POPQUORN_CITATION = ("Jiaxin Pei and David Jurgens. 2023. When Do Annotator Demographics Matter? Measuring "
                     "the Influence of Annotator Demographics with the POPQUORN Dataset. In Proceedings of "
                     "the 17th Linguistic Annotation Workshop (LAW-XVII), ACL 2023. arXiv:2306.06826")
ZURICH_LICENCE = ("no licence file in the source repository; released with the paper for research use "
                  "— cite Yang et al. (2024)")
ZURICH_CITATION = ("Joshua C. Yang, Damian Dailisan, Marcin Korecki, Carina I. Hausladen and Dirk Helbing. "
                   "2024. LLM Voting: Human Choices and AI Collective Decision Making. In Proceedings of "
                   "the AAAI/ACM Conference on AI, Ethics, and Society (AIES). arXiv:2402.01766")
AMAZON_LICENCE = "research use; see amazon-reviews-2023.github.io — cite Hou et al. (2024)"
AMAZON_CITATION = ("Yupeng Hou, Jiacheng Li, Zhankui He, An Yan, Xiusi Chen and Julian McAuley. 2024. "
                   "Bridging Language and Items for Retrieval and Recommendation. arXiv:2403.03952")

POPQUORN_PROFILE = ("gender", "race", "age", "occupation", "education")
#: Age bands from youngest to oldest, spelt as in the POPQUORN files (including their '54-59' band,
#: which sits between '50-54' and '60-64').
POPQUORN_AGE_LEVELS = ["18-24", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "54-59", "60-64", ">65"]
#: Education from least to most. 'Other' and 'Prefer not to disclose' have no place on this order and
#: are stored as missing.
POPQUORN_EDUCATION_LEVELS = ["Less than a high school diploma", "High school diploma or equivalent",
                             "College degree", "Graduate degree"]
ZURICH_IMPORTANCE_LEVELS = ["Not important at all", "Slightly important", "Moderately important",
                            "Very important", "Extremely important"]
ZURICH_CONNECTED_LEVELS = ["Not at all", "A little", "A moderate amount", "A lot", "A great deal"]
ZURICH_IMPORTANCE = ("District Importance", "Topic Importance", "Cost Importance", "Likelihood Importance")
ZURICH_TOPICS = ("Culture", "Nature", "Transport")


# ---------------------------------------------------------------------------------------------- helpers
def _unordered_to_missing(frame: pd.DataFrame, column: str, levels: Sequence[str], worker_col: str,
                          notes: list[str]) -> pd.DataFrame:
    """Values of an ordered attribute that are off its order (e.g. 'Other') become missing; say so."""
    values = frame[column]
    off = values.notna() & ~values.isin(list(levels))
    if not off.any():
        return frame
    out = frame.copy()
    out[column] = values.where(~off, None)
    kinds = sorted(values[off].astype(str).unique())
    n_workers = frame.loc[off, worker_col].nunique()
    notes.append(f"{column} {', '.join(repr(k) for k in kinds)} ({n_workers} workers) has no place on the "
                 f"{column} order and is stored as missing.")
    return out


def _check_fixed_layout(name: str, kw: Mapping[str, Any]) -> None:
    if kw:
        raise ConfigError(f"data set '{name}' takes no option {', '.join(sorted(kw))}")


# ---------------------------------------------------------------------------------------------- POPQUORN
def build_popquorn_offensiveness(spec: DatasetSpec, **kw: Any) -> CrowdDataset:
    _check_fixed_layout(spec.name, kw)
    path = spec.fetch("offensiveness.csv")
    table = load_table(path, infer_types=False)
    notes: list[str] = []
    table = _unordered_to_missing(table, "education", POPQUORN_EDUCATION_LEVELS, "user_id", notes)
    return dataset_from_frame(
        table,
        column_map={"task": "instance_id", "worker": "user_id", "label": "offensiveness"},
        label=spec.label, text_column="text", profile_columns=list(POPQUORN_PROFILE),
        source=str(path), name=spec.name,
        ordered_attributes={"age": POPQUORN_AGE_LEVELS, "education": POPQUORN_EDUCATION_LEVELS},
        description=f"{spec.description} {' '.join(notes)}".strip(),
    )


def build_popquorn_email_rewriting(spec: DatasetSpec, **kw: Any) -> CrowdDataset:
    _check_fixed_layout(spec.name, kw)
    path = spec.fetch("email_rewriting.csv")
    table = load_table(path, infer_types=False)
    anonymous = table["user_id"].isna() | (table["user_id"].astype(str).str.strip() == "")
    dropped = int(anonymous.sum())
    n_tasks_all = table["instance_id"].nunique()
    table = table[~anonymous]
    notes = [f"{dropped} rows without a user_id (no worker, no profile) were skipped"
             f" ({n_tasks_all - table['instance_id'].nunique()} emails had only such rows)."]
    profile = [c for c in POPQUORN_PROFILE if table[c].notna().any()]
    ordered: dict[str, list[str]] = {}
    if "age" in profile:
        ordered["age"] = POPQUORN_AGE_LEVELS
    table = _unordered_to_missing(table, "education", POPQUORN_EDUCATION_LEVELS, "user_id", notes)
    ordered["education"] = POPQUORN_EDUCATION_LEVELS
    ds = dataset_from_frame(
        table,
        column_map={"task": "instance_id", "worker": "user_id", "label": "revised email"},
        label=spec.label, text_column="original email", profile_columns=profile,
        source=str(path), name=spec.name, ordered_attributes=ordered,
        description=f"{spec.description} {' '.join(notes)}",
    )
    ds.dropped_rows = dropped
    return ds


def build_popquorn_generic(spec: DatasetSpec, *, column_map: Any = None, label: LabelSpec | None = None,
                           text_column: str | None = None, profile_columns: Sequence[str] | None = None,
                           **kw: Any) -> CrowdDataset:
    """Untested POPQUORN tables, assumed to share the layout of the two tested ones."""
    _check_fixed_layout(spec.name, kw)
    path = spec.fetch(spec.files[0].filename)
    table = load_table(path, infer_types=False)
    cmap = dict(spec.options.get("column_map", {}))
    if column_map is not None:
        from crowdllm.data.loaders import parse_column_map

        cmap.update(parse_column_map(column_map))
    if profile_columns is None and "profile" not in cmap:
        profile_columns = [c for c in POPQUORN_PROFILE if c in table.columns]
    anonymous = table[cmap.get("worker", "worker")].isna() if cmap.get("worker") in table.columns else None
    dropped = int(anonymous.sum()) if anonymous is not None else 0
    if anonymous is not None:
        table = table[~anonymous]
    ds = dataset_from_frame(
        table, column_map=cmap, label=label or spec.label,
        text_column=text_column or spec.options.get("text_column", "text"),
        profile_columns=profile_columns, source=str(path), name=spec.name,
        ordered_attributes={"age": POPQUORN_AGE_LEVELS} if "age" in (profile_columns or []) else None,
        description=f"{spec.description} (NOT verified in this project.)"
                    + (f" {dropped} rows without a worker id were skipped." if dropped else ""),
    )
    ds.dropped_rows = dropped
    return ds


# ---------------------------------------------------------------------------------------------- Zurich PB
def build_zurich_pb_top5(spec: DatasetSpec, **kw: Any) -> CrowdDataset:
    _check_fixed_layout(spec.name, kw)
    projects_path = spec.fetch("zurich_lab.csv")
    meta_path = spec.fetch("lab_meta.csv")
    votes_path = spec.fetch("votes_kapp.json")
    projects = load_table(projects_path)
    meta = load_table(meta_path)
    k = spec.label.k if spec.label is not None and spec.label.k else 5
    for frame, cols, src in ((projects, ("Id", "Name", "District", "Category", "Cost"), projects_path),
                             (meta, ("ID", "District", "How Connected", *ZURICH_IMPORTANCE, "Description",
                                     *(f"{o} {w}" for o in ("1st", "2nd", "3rd") for w in ("Topic", "Score"))),
                              meta_path)):
        for col in cols:
            if col not in frame.columns:
                raise CrowdDataError(f"no column '{col}'", file=str(src), row=1, column=col)

    tasks = pd.DataFrame({
        "task": projects["Id"].astype(str).str.strip(),
        "text": [
            f"Project {pid}, '{name}': a {str(cat).lower()} project in the {dist} district of Zurich, "
            f"costing {int(cost):,} CHF."
            for pid, name, dist, cat, cost in zip(projects["Id"], projects["Name"], projects["District"],
                                                  projects["Category"], projects["Cost"], strict=True)
        ],
        "District": projects["District"].to_numpy(),
        "Category": projects["Category"].to_numpy(),
        "Cost": pd.to_numeric(projects["Cost"]).to_numpy(),
    }, index=projects.index)
    n_items = len(tasks)

    workers = pd.DataFrame({"worker": meta["ID"].astype(str).str.strip()}, index=meta.index)
    scores = {t: np.full(len(meta), np.nan) for t in ZURICH_TOPICS}
    for i, row in enumerate(meta.itertuples(index=False)):
        rec = dict(zip(meta.columns, row, strict=True))
        for order in ("1st", "2nd", "3rd"):
            topic = str(rec[f"{order} Topic"]).strip()
            if topic not in scores:
                raise CrowdDataError(f"topic '{topic}' is not one of {', '.join(ZURICH_TOPICS)}",
                                     file=str(meta_path), row=int(meta.index[i]), column=f"{order} Topic")
            try:
                scores[topic][i] = float(rec[f"{order} Score"])
            except (TypeError, ValueError):
                raise CrowdDataError(f"score '{rec[f'{order} Score']}' is not a number", file=str(meta_path),
                                     row=int(meta.index[i]), column=f"{order} Score") from None
        for topic, col in scores.items():
            if np.isnan(col[i]):
                raise CrowdDataError(f"no score for topic '{topic}'", file=str(meta_path),
                                     row=int(meta.index[i]), column="1st Topic")
    for topic in ZURICH_TOPICS:
        col = scores[topic]
        workers[f"score_{topic}"] = col.astype(np.int64) if np.all(col == np.round(col)) else col
    for col in ("District", "How Connected", *ZURICH_IMPORTANCE, "Description"):
        workers[col] = meta[col].to_numpy()

    ballots = _read_ballots(votes_path, n_voters=len(meta), n_items=n_items, k=k)
    chosen = np.zeros((len(meta), n_items), dtype=int)
    for i, votes in enumerate(ballots):
        chosen[i, np.asarray(votes) - 1] = 1
    responses = pd.DataFrame({
        "task": np.tile(tasks["task"].to_numpy(), len(meta)),
        "worker": np.repeat(workers["worker"].to_numpy(), n_items),
        "label": chosen.ravel(),
    })
    ordered = {col: ZURICH_IMPORTANCE_LEVELS for col in ZURICH_IMPORTANCE}
    ordered["How Connected"] = ZURICH_CONNECTED_LEVELS
    ds = CrowdDataset(responses=responses, tasks=tasks, workers=workers, label=spec.label or LabelSpec("topk", k=k),
                      name=spec.name, source=str(votes_path), ordered_attributes=ordered,
                      description=spec.description)
    return ds.validate()


def _read_ballots(path: Path, *, n_voters: int, n_items: int, k: int) -> list[list[int]]:
    src = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CrowdDataError(f"not valid UTF-8 JSON: {err}", file=src) from None
    if not isinstance(data, list) or len(data) != n_voters:
        found = len(data) if isinstance(data, list) else type(data).__name__
        raise CrowdDataError(f"expected a list of {n_voters} ballots (one per lab_meta row), found {found}",
                             file=src)
    ballots: list[list[int]] = []
    for i, ballot in enumerate(data):
        votes = ballot.get("votes") if isinstance(ballot, dict) else None
        if isinstance(ballot, dict) and ballot.get("agent_id", i) != i:
            raise CrowdDataError(f"ballot {i + 1} has agent_id {ballot.get('agent_id')}, expected {i}",
                                 file=src, row=i + 1, column="agent_id")
        ok = (isinstance(votes, list) and len(votes) == k and len(set(votes)) == k
              and all(isinstance(v, int) and 1 <= v <= n_items for v in votes))
        if not ok:
            raise CrowdDataError(f"ballot {i + 1} must list {k} different project numbers in 1..{n_items}, "
                                 f"found {votes!r}", file=src, row=i + 1, column="votes")
        ballots.append(votes)  # type: ignore[arg-type]
    return ballots


# ---------------------------------------------------------------------------------------------- Amazon
def build_amazon_reviews(spec: DatasetSpec, *, column_map: Any = None, label: LabelSpec | None = None,
                         min_reviewers: int | None = None, max_reviewers: int | None = None,
                         max_text_chars: int = 2000, **kw: Any) -> CrowdDataset:
    """Products (task) rated 1-5 by users (worker), keeping products with a given number of distinct
    reviewers (the paper's filter). Users have no profile attributes in this data."""
    _check_fixed_layout(spec.name, kw)
    if column_map is not None:
        raise ConfigError(f"data set '{spec.name}' reads the Amazon Reviews 2023 layout; no column map")
    lo = int(min_reviewers if min_reviewers is not None else spec.options.get("min_reviewers", 1))
    hi = int(max_reviewers if max_reviewers is not None else spec.options.get("max_reviewers", 10**9))
    reviews_file, meta_file = spec.files[0], spec.files[1]
    reviews_path = spec.fetch(reviews_file.filename)
    rows: list[tuple[int, str, str, Any]] = []
    for lineno, rec in _jsonl_records(reviews_path):
        rows.append((lineno, str(rec.get("parent_asin") or rec.get("asin") or ""), str(rec.get("user_id") or ""),
                     rec.get("rating")))
    reviews = pd.DataFrame(rows, columns=["row", "product", "user", "rating"]).set_index("row")
    reviews = reviews[(reviews["product"] != "") & (reviews["user"] != "")]
    n_before = len(reviews)
    reviews = reviews[~reviews.duplicated(["product", "user"])]
    repeats = n_before - len(reviews)
    per_product = reviews.groupby("product")["user"].nunique()
    keep = set(per_product[(per_product >= lo) & (per_product <= hi)].index)
    reviews = reviews[reviews["product"].isin(keep)]
    if reviews.empty:
        raise CrowdDataError(f"no product has between {lo} and {hi} distinct reviewers", file=str(reviews_path))
    meta_path = spec.fetch(meta_file.filename)
    texts: dict[str, str] = {}
    for _lineno, rec in _jsonl_records(meta_path):
        pid = str(rec.get("parent_asin") or "")
        if pid in keep and pid not in texts:
            texts[pid] = _product_text(rec, max_text_chars)
    no_meta = sorted(keep - set(texts))
    reviews = reviews[reviews["product"].isin(texts)]
    reviews = reviews.assign(text=reviews["product"].map(texts))
    notes = [f"Products with {lo}..{hi} distinct reviewers." if hi < 10**9 else "",
             f"{repeats} repeated reviews (same user, same product) skipped." if repeats else "",
             f"{len(no_meta)} products without metadata skipped." if no_meta else ""]
    return dataset_from_frame(
        reviews, column_map={"task": "product", "worker": "user", "label": "rating"},
        label=label or spec.label, text_column="text", profile_columns=[], source=str(reviews_path),
        name=spec.name, description=" ".join([spec.description + " (NOT verified in this project.)",
                                              *[n for n in notes if n]]),
    )


def _jsonl_records(path: Path):  # type: ignore[no-untyped-def]
    """(line number, object) for each line of a (gzipped) JSONL file, streamed."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as err:
                    raise CrowdDataError(f"not valid JSON: {err.msg}", file=str(path), row=lineno) from None
                if isinstance(rec, dict):
                    yield lineno, rec
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise CrowdDataError(f"cannot read the file: {err}", file=str(path)) from None


def _product_text(rec: Mapping[str, Any], max_chars: int) -> str:
    parts = [str(rec.get("title") or "").strip()]
    features = rec.get("features") or []
    if isinstance(features, list) and features:
        parts.append("Features: " + "; ".join(str(f).strip() for f in features))
    description = rec.get("description") or []
    if isinstance(description, list) and description:
        parts.append("Description: " + " ".join(str(d).strip() for d in description))
    text = " ".join(p for p in parts if p) or "(no product information)"
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


# ---------------------------------------------------------------------------------------------- registry
register_dataset(DatasetSpec(
    name="popquorn-offensiveness",
    description="POPQUORN offensiveness ratings: US Prolific workers rate Reddit comments from 1 "
                "(not offensive at all) to 5 (very offensive).",
    files=(DataFile("offensiveness.csv", f"{POPQUORN_RAW}/dataset/offensiveness/raw_data.csv",
                    "fb0589093d45da76bf4ef4d0abff679b540bdd5b17af5764913b3ccd0a069e1e"),),
    licence=POPQUORN_LICENCE, citation=POPQUORN_CITATION,
    label=LabelSpec("ordinal", scale=(1, 5)), builder="build_popquorn_offensiveness", subdir="popquorn",
    counts={"tasks": 1500, "workers": 262, "responses": 13036},
))

register_dataset(DatasetSpec(
    name="popquorn-email-rewriting",
    description="POPQUORN email rewriting: workers rewrite an email to be more polite (free text).",
    files=(DataFile("email_rewriting.csv", f"{POPQUORN_RAW}/dataset/email_rewriting/raw_data.csv",
                    "058f5e4bfaa0e80e2ca1a8c6ecd61635112c512bf06b7681f1fad4dca6f2ab90"),),
    licence=POPQUORN_LICENCE, citation=POPQUORN_CITATION,
    label=LabelSpec("text"), builder="build_popquorn_email_rewriting", subdir="popquorn",
    counts={"tasks": 1411, "workers": 227, "responses": 2266},
))

register_dataset(DatasetSpec(
    name="zurich-pb-top5",
    description="Zurich participatory budgeting lab study: 180 students each pick 5 of 24 city projects.",
    files=(
        DataFile("zurich_lab.csv", f"{ZURICH_RAW}/data/zurich_lab.csv",
                 "b5b444969cfa213c4cbc1b1f101860e30dec508d9d832a6f7ea9bfb285ead5a9"),
        DataFile("lab_meta.csv", f"{ZURICH_RAW}/data/lab_meta.csv",
                 "61652e39d93cd70776c3222b0322228c05de3ad8607045f0271c399564a083e7"),
        DataFile("votes_kapp.json", f"{ZURICH_RAW}/outcome/lab_vote/votes_kapp.json",
                 "6b38353b978322a5c75cdfba036db4b85e09e14dc52fc45d2425b0bf8f5d48ba"),
    ),
    licence=ZURICH_LICENCE, citation=ZURICH_CITATION,
    label=LabelSpec("topk", k=5), builder="build_zurich_pb_top5", subdir="zurich-pb",
    counts={"tasks": 24, "workers": 180, "responses": 4320},
))



def _popquorn_rating(name: str, description: str, folder: str, column: str,
                     counts: Mapping[str, int] | None = None) -> DatasetSpec:
    """A POPQUORN 1-5 rating set listed by URL (not verified here) and read by the generic builder:
    ``dataset/<folder>/raw_data.csv``, one row per rating (``instance_id`` the task, ``user_id`` the
    worker, ``column`` the rating, ``text`` the task's text)."""
    return DatasetSpec(
        name=name, description=description,
        files=(DataFile(f"{folder}.csv", f"{POPQUORN_RAW}/dataset/{folder}/raw_data.csv", None),),
        licence=POPQUORN_LICENCE, citation=POPQUORN_CITATION,
        label=LabelSpec("ordinal", scale=(1, 5)), builder="build_popquorn_generic", tested=False,
        subdir="popquorn", counts=dict(counts or {}),
        options={"column_map": {"task": "instance_id", "worker": "user_id", "label": column},
                 "text_column": "text"},
    )


register_dataset(_popquorn_rating(
    "popquorn-qa-difficulty",
    "POPQUORN question answering: workers rate how difficult a question is to answer (1-5).",
    "question_answering", "difficulty", counts={"tasks": 1000, "workers": 458, "responses": 4576},
))

register_dataset(_popquorn_rating(
    "popquorn-politeness",
    "POPQUORN politeness: workers rate how polite an email is (1-5).",
    "politeness_rating", "politeness",
))

register_dataset(DatasetSpec(
    name="amazon-beauty",
    description="Amazon Reviews 2023, All Beauty: products with 20-30 distinct reviewers, rated 1-5.",
    files=(DataFile("All_Beauty.jsonl.gz", f"{AMAZON_RAW}/review_categories/All_Beauty.jsonl.gz", None),
           DataFile("meta_All_Beauty.jsonl.gz", f"{AMAZON_RAW}/meta_categories/meta_All_Beauty.jsonl.gz",
                    None)),
    licence=AMAZON_LICENCE, citation=AMAZON_CITATION,
    label=LabelSpec("ordinal", scale=(1, 5)), builder="build_amazon_reviews", tested=False,
    subdir="amazon-2023", counts={"tasks": 448, "workers": 10957, "responses": 11154},
    options={"min_reviewers": 20, "max_reviewers": 30},
))

register_dataset(DatasetSpec(
    name="amazon-music",
    description="Amazon Reviews 2023, Musical Instruments: products with exactly 20 distinct reviewers, "
                "rated 1-5.",
    files=(DataFile("Musical_Instruments.jsonl.gz",
                    f"{AMAZON_RAW}/review_categories/Musical_Instruments.jsonl.gz", None),
           DataFile("meta_Musical_Instruments.jsonl.gz",
                    f"{AMAZON_RAW}/meta_categories/meta_Musical_Instruments.jsonl.gz", None)),
    licence=AMAZON_LICENCE, citation=AMAZON_CITATION,
    label=LabelSpec("ordinal", scale=(1, 5)), builder="build_amazon_reviews", tested=False,
    subdir="amazon-2023", counts={"tasks": 629, "workers": 12396, "responses": 12580},
    options={"min_reviewers": 20, "max_reviewers": 20},
))
