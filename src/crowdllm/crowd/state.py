"""What a fitted DigitalCrowd knows, in one dataclass, and how it is written to and read from disk.

The saved folder holds the belief network (``belief.safetensors`` + ``belief.json``) and
``crowd.json`` with everything else (no pickle, no training texts). ``crowd.json`` is written last
and carries the digests of the belief files, so an interrupted save (or files copied from another
model) is refused at load instead of mixing two models. Format version 2 dropped what was saved but
never read (the text embeddings' mean and sd, used only while fitting); version 3 added the digital
twins of known people and the seen-task mixture (``twins``, ``mixture``; a reader of version 2 would
ignore them and sample differently, hence the new number); version 4 added the voter model of top-k
crowds (``voters``: :mod:`.voters`, with the weight that combines it with the belief model); version 5
the LLM's hidden states as task features (their mean and principal directions, ``hidden_basis``, and
the reference table's ``h_*`` columns in ``reference-hidden.safetensors``); version 6 an ensemble of
belief networks (``belief_members``; the second and later in ``belief-<k>.safetensors`` / ``.json``);
version 7 each numeric twin's curve and own noise factor (``twins``: ``q``, ``s``, ``curve_kappa``,
``noise_kappa``; a reader of version 6 would ignore them and sample differently). Versions 1-6 still
load (without the parts they did not have; their numeric twins have no curve and one noise factor for
every known person, as they sampled). The twins of a categorical crowd
(:class:`~crowdllm.crowd.choice_twins.ChoiceTwins`) are saved under ``twins`` marked ``"model":
"choice"`` (a reader that knows only numeric twins refuses them: they lack the numeric twins' fields).
A newer version is refused with a one-line error.

A new fitted component (for example per-person twins) gets a field here, a line in :func:`to_json`
and one in :func:`from_json`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import atomic_path, read_json_object
from crowdllm.belief.calibration import ReferenceCalibrator
from crowdllm.belief.cvae import BeliefModel
from crowdllm.belief.embeddings import TaskFeaturizer
from crowdllm.belief.ensemble import BeliefEnsemble
from crowdllm.blend import Blender, blender_from_dict
from crowdllm.crowd.choice_twins import ChoiceTwins
from crowdllm.crowd.memory import TaskMemory
from crowdllm.crowd.mixture import AnswerMixture
from crowdllm.crowd.reference import hidden_columns, reference_frame
from crowdllm.crowd.twins import PersonTwins
from crowdllm.crowd.voters import VoterChoice
from crowdllm.data.dataset import LabelSpec
from crowdllm.data.registry import sha256_of
from crowdllm.errors import ConfigError
from crowdllm.profiles.encoding import ProfileEncoder

FORMAT_VERSION = 7
HIDDEN_FILE = "reference-hidden.safetensors"
BELIEF_FILES = ("belief.safetensors", "belief.json")
_KIND = "crowdllm.DigitalCrowd"


@dataclass
class CrowdState:
    """The fitted crowd. Label scale: ``center``/``scale`` (model units = (label - center) / scale
    for numeric labels), ``ref_default`` (the VAE-only reference), ``ref_fill`` (for a missing one),
    ``global_dist`` (categorical: the training answer distribution)."""

    label: LabelSpec
    center: float = 0.0
    scale: float = 1.0
    ref_default: float = 0.0
    ref_fill: float = 0.0
    global_dist: np.ndarray | None = None
    # the LLM reference of every task the caller gave one for
    has_reference: bool = False
    p_columns: list[str] = field(default_factory=list)
    reference: pd.DataFrame = field(default_factory=pd.DataFrame)
    reference_missing: int = 0
    hidden_basis: np.ndarray | None = None  # (1 + k, d): the training tasks' mean h_* and k principal directions
    # task and profile inputs
    embedder_name: str = ""
    featurizer: TaskFeaturizer | None = None
    calibrator: ReferenceCalibrator | None = None
    calibrated_base: pd.Series | pd.DataFrame = field(default_factory=lambda: pd.Series(dtype=float))  # by task
    profile_encoder: ProfileEncoder | None = None
    profile_columns: list[str] = field(default_factory=list)  # in the data's order
    pool: pd.DataFrame = field(default_factory=pd.DataFrame)  # the real training profiles
    # the model's parts
    belief: BeliefModel | BeliefEnsemble | None = None
    memory: TaskMemory | None = None
    twins: PersonTwins | ChoiceTwins | None = None  # known people's own habits (numeric / categorical labels)
    mixture: AnswerMixture | None = None  # seen tasks: real answers mixed in (ordinal labels)
    voters: VoterChoice | None = None  # top-k: each voter's utilities from their profile
    voter_mix: dict[str, Any] = field(default_factory=dict)  # its weight and scale next to the belief's
    blender: Blender | None = None
    task_sigma: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    n_train_responses: int = 0
    tasks: pd.DataFrame | None = None  # training tasks, in memory only (lets sample() take task ids)


def _table(frame: pd.DataFrame | pd.Series) -> dict[str, Any]:
    if isinstance(frame, pd.Series):
        return {"tasks": frame.index.tolist(), "values": frame.tolist()}
    return {"tasks": frame.index.tolist(), "columns": list(frame.columns), "values": frame.to_numpy().tolist()}


def _frame(d: dict[str, Any], dtype: Any = None) -> pd.DataFrame:
    return pd.DataFrame(d["values"], index=pd.Index(d["tasks"], dtype=str), columns=d["columns"], dtype=dtype)


def to_json(s: CrowdState, hyper: dict[str, Any], directory: Path) -> dict[str, Any]:
    """The ``crowd.json`` content for state ``s`` (the belief files must be written already)."""
    assert s.featurizer is not None and s.profile_encoder is not None and s.blender is not None
    assert s.memory is not None
    cal = None if s.calibrator is None else {"state": s.calibrator.get_state(), **_table(s.calibrated_base)}
    files = s.belief.files() if isinstance(s.belief, BeliefEnsemble) else list(BELIEF_FILES)
    hidden = hidden_columns(s.reference)
    if hidden:  # the hidden states are many numbers: a binary file next to crowd.json, like the weights
        from safetensors.numpy import save_file

        with atomic_path(directory / HIDDEN_FILE) as tmp:
            save_file({"hidden": np.ascontiguousarray(s.reference[hidden].to_numpy(np.float32)),
                       "basis": np.ascontiguousarray(s.hidden_basis, dtype=np.float64)}, str(tmp))
        files.append(HIDDEN_FILE)
    return {
        "format_version": FORMAT_VERSION, "kind": _KIND, "hyper": hyper, "label": s.label.to_dict(),
        "center": s.center, "scale": s.scale, "ref_default": s.ref_default, "ref_fill": s.ref_fill,
        "global_dist": s.global_dist.tolist() if s.global_dist is not None else None,
        "has_reference": s.has_reference, "p_columns": s.p_columns,
        "reference": _table(s.reference.drop(columns=hidden)), "reference_missing": s.reference_missing,
        "hidden_basis": None if s.hidden_basis is None else list(s.hidden_basis.shape),
        "embedder": s.embedder_name, "featurizer": s.featurizer.get_state(),
        "profile_encoder": s.profile_encoder.get_state(), "profile_columns": s.profile_columns,
        "pool": s.pool.to_dict(orient="list"),
        "memory": {**_table(s.memory.offsets_table), "kappa": s.memory.kappa_},
        "calibration": cal, "blender": s.blender.to_dict(), "task_sigma": _table(s.task_sigma),
        "n_train_responses": s.n_train_responses,
        "belief_members": len(s.belief.members) if isinstance(s.belief, BeliefEnsemble) else 1,
        "twins": s.twins.to_dict() if s.twins is not None else None,
        "mixture": s.mixture.to_dict() if s.mixture is not None else None,
        "voters": None if s.voters is None else {
            "model": s.voters.to_dict(), "weight": s.voter_mix["weight"], "scale": s.voter_mix["scale"],
            "validation_ll": [[w, ll] for w, ll in s.voter_mix.get("validation_ll", {}).items()]},
        "files": {name: sha256_of(directory / name) for name in files},
    }


def _reference(d: dict[str, Any], directory: Path) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The saved reference table, with its hidden-state columns back when it had them, and their basis."""
    frame = _frame(d["reference"])
    if d.get("hidden_basis") is None:
        return reference_frame(frame), None
    from safetensors.numpy import load_file

    arrays = load_file(str(directory / HIDDEN_FILE))
    h = arrays["hidden"]
    frame = frame.join(pd.DataFrame(h, index=frame.index, columns=[f"h_{i}" for i in range(h.shape[1])]))
    return reference_frame(frame), arrays["basis"]


def _twins(d: dict[str, Any] | None) -> PersonTwins | ChoiceTwins | None:
    """The saved twins: categorical ones are marked ``"model": "choice"``, numeric ones not."""
    if not d:
        return None
    return ChoiceTwins.from_dict(d) if d.get("model") == "choice" else PersonTwins.from_dict(d)


def from_json(d: dict[str, Any], directory: Path) -> CrowdState:
    """The state written by :func:`to_json` (format versions 1-7; version 1's extra keys,
    ``emb_mean`` and ``emb_std``, were never read)."""
    featurizer = TaskFeaturizer.from_state(d["featurizer"])
    text_cols = [c for c, k in d["profile_encoder"]["kinds"].items() if k == "text"]
    cal = d.get("calibration")
    ts = d.get("task_sigma") or {"tasks": [], "values": []}
    voters = d.get("voters")
    reference, hidden_basis = _reference(d, directory)
    return CrowdState(
        label=LabelSpec.from_dict(d["label"]),
        center=float(d["center"]), scale=float(d["scale"]),
        ref_default=float(d["ref_default"]), ref_fill=float(d["ref_fill"]),
        global_dist=None if d.get("global_dist") is None else np.asarray(d["global_dist"], dtype=float),
        has_reference=bool(d["has_reference"]), p_columns=list(d["p_columns"]),
        reference=reference, hidden_basis=hidden_basis,
        reference_missing=int(d.get("reference_missing", 0)),
        embedder_name=d["embedder"], featurizer=featurizer,
        calibrator=None if cal is None else ReferenceCalibrator.from_state(cal["state"]),
        calibrated_base=(pd.Series(dtype=float) if cal is None else _frame(cal, dtype=float) if "columns" in cal else
                         pd.Series(cal["values"], index=pd.Index(cal["tasks"], dtype=str), dtype=float)),
        profile_encoder=ProfileEncoder.from_state(
            d["profile_encoder"], text_encoder=featurizer.embedder.embed if text_cols else None),
        profile_columns=list(d["profile_columns"]), pool=pd.DataFrame(d["pool"]),
        memory=TaskMemory.from_table(_frame(d["memory"], dtype=float), float(d["memory"]["kappa"])),
        blender=blender_from_dict(d["blender"]),
        task_sigma=pd.Series(ts["values"], index=pd.Index(ts["tasks"], dtype=str), dtype=float),
        n_train_responses=int(d.get("n_train_responses", 0)),
        twins=_twins(d.get("twins")),
        mixture=AnswerMixture.from_dict(d["mixture"]) if d.get("mixture") else None,
        voters=VoterChoice.from_dict(voters["model"]) if voters else None,
        voter_mix={} if not voters else {"weight": float(voters["weight"]), "scale": float(voters["scale"]),
                                         "validation_ll": {float(w): float(v) for w, v in voters["validation_ll"]}},
        belief=(BeliefEnsemble.load(directory, int(d["belief_members"])) if int(d.get("belief_members", 1)) > 1
                else BeliefModel.load(directory)),
    )


def read_json(directory: Path) -> dict[str, Any]:
    """``crowd.json`` of a saved crowd, checked: a DigitalCrowd, a known version, its own belief files."""
    path = directory / "crowd.json"
    d = read_json_object(path, "saved DigitalCrowd")
    if d.get("kind") != _KIND:
        raise ConfigError(f"{path}: not a saved DigitalCrowd")
    try:
        version = int(d.get("format_version", 0))
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: format_version {d.get('format_version')!r} is not a number") from None
    if version > FORMAT_VERSION:
        raise ConfigError(f"{path}: format version {version} is newer than this crowdllm understands "
                          f"({FORMAT_VERSION}); upgrade crowdllm to load it")
    for name, digest in dict(d.get("files") or {}).items():
        if not (directory / name).is_file() or sha256_of(directory / name) != digest:
            raise ConfigError(f"{directory / name} does not belong with {path} (an interrupted save, or a "
                              f"file of another model?); save the crowd again")
    return d


def load(directory: Path, make: Callable[[dict[str, Any]], Any]) -> Any:
    """The crowd saved in ``directory``: ``make(hyper)`` builds the estimator, its ``state_`` is read back."""
    d = read_json(directory)
    try:
        crowd = make(d["hyper"])
        crowd.state_ = from_json(d, directory)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        detail = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise ConfigError(f"{directory / 'crowd.json'}: damaged or incompatible saved crowd ({detail}); "
                          "fit the crowd again") from None
    return crowd
