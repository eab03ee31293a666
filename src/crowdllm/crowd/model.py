"""DigitalCrowd: fit the CrowdLLM model on real people's answers, then sample a virtual crowd.

>>> from crowdllm.data.synthetic import make_synthetic_crowd
>>> from crowdllm.crowd import DigitalCrowd
>>> syn = make_synthetic_crowd(n_tasks=40, n_workers=30, random_state=0)
>>> crowd = DigitalCrowd(epochs=5, embedder="hashing").fit(syn.dataset)
>>> answers = crowd.sample(syn.dataset.tasks, n_people=50, random_state=1)
>>> sorted(answers.columns)[:3]
['age', 'gender', 'group']

The pipeline (paper Sec. 3): profiles -> LLM reference ``y_ref`` per task (:mod:`.reference`) ->
belief deviation ``delta`` from the conditional VAE (:mod:`crowdllm.belief.cvae`) averaged over ``J``
belief samples -> blender ``F(y_ref + delta, sigma^2)`` (:mod:`crowdllm.blend`); seen tasks add the task
memory's offset (:mod:`.memory`). Label kinds: :mod:`.kinds`; the fitted state: ``state_`` (:mod:`.state`).

**Reference.** ``fit(dataset, reference=...)`` takes a frame indexed by task (or with a ``task``
column) holding ``y_ref`` and optionally ``p_<level>``. With ``reference=None`` the crowd is "VAE
only": ``y_ref`` is the training mean (the global label distribution for categories, ``k / n_items``
for votes). A task whose reference is NaN gets the training mean of ``y_ref`` and a "missing" flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crowdllm._io import atomic_write_json
from crowdllm._io import rng as make_rng
from crowdllm.belief.cvae import BeliefModel, TrainData
from crowdllm.belief.embeddings import TaskFeaturizer, TextEmbedder
from crowdllm.belief.ensemble import BeliefEnsemble, train_beliefs
from crowdllm.blend import OrdinalBlender
from crowdllm.crowd import choice_twins, decisions, inputs, state
from crowdllm.crowd.kinds import CrowdKind, crowd_kind
from crowdllm.crowd.memory import TaskMemory
from crowdllm.crowd.mixture import AnswerMixture, fit_mixture, mix_labels
from crowdllm.crowd.params import CrowdParams
from crowdllm.crowd.reference import ReferenceLike, fit_reference, resolve
from crowdllm.crowd.reference import features as reference_features
from crowdllm.crowd.twins import PersonTwins, fit_twins
from crowdllm.crowd.voters import VoterChoice, crowd_decisions, fit_voters
from crowdllm.data.dataset import CrowdDataset
from crowdllm.errors import ConfigError
from crowdllm.profiles.encoding import ProfileEncoder
from crowdllm.profiles.generator import ProfileGenerator

# fitted attributes kept under another name in the state
_RENAMED = {"task_offsets_": lambda s: s.memory.offsets_table, "kappa_": lambda s: s.memory.kappa_,
            "belief_": lambda s: s.belief, "tasks_": lambda s: s.tasks}


class DigitalCrowd(CrowdParams):
    """The CrowdLLM digital crowd (scikit-learn style; hyper-parameters stored unchanged).

    Parts: ``belief`` (a :class:`~crowdllm.belief.cvae.BeliefModel`: latent size, network, training;
    its hyper-parameters may also be passed flat, ``DigitalCrowd(epochs=50)``), ``memory`` (a
    :class:`~crowdllm.crowd.memory.TaskMemory`; ``memory_kappa=`` may be passed flat; ``task_memory=False``
    switches it off), ``twins`` (a :class:`~crowdllm.crowd.twins.PersonTwins`: known people's own offset
    and scale use; categories: their answer shares, :mod:`.choice_twins`; ``person_twins=False`` switches
    them off), ``mixture`` (an :class:`~crowdllm.crowd.mixture.AnswerMixture`: on seen tasks new people's
    answers mixed with the real ones, the weight learned on validation people, ordinal labels;
    ``answer_mixture=False`` switches it off), ``voters`` (a :class:`~crowdllm.crowd.voters.VoterChoice`:
    top-k voters' utilities from their profile, weighed against the belief on validation voters;
    ``voter_model=False`` switches it off), ``blender`` (a blender name, None = the default for the label kind).
    ``ensemble``: how many belief networks (seeds ``random_state + k``) are averaged
    (:mod:`crowdllm.belief.ensemble`). Decisions: ``J`` (belief samples averaged per person; 0, the
    default, is the limit of many: the prior mean), ``sigma``
    (None = maximum likelihood on the training residuals, or a number in label units), ``sigma_scale``
    (multiplies it), ``task_sigma``
    (> 0: each training task gets its own ordinal noise, shrunk towards the global one with this many
    pseudo-answers; 0: one sigma for all), ``calibrate`` ("auto", "linear", "ridge", "none"; see
    :mod:`.inputs`). Inputs: ``embedder`` ("auto" | "minilm" | "hashing" | a :class:`TextEmbedder`),
    ``text_column``, ``meta_columns``, ``profile_text_columns``, ``use_reference_distribution`` (feed
    ``p_*`` columns to g_x), ``hidden_components`` (the LLM's hidden states, when the reference has them,
    as this many principal components; :mod:`.reference`). Validation: ``validation``, ``valid_fraction``,
    ``refit`` (retrain on all rows for the chosen epochs). ``random_state`` seeds everything."""

    def __init__(self, *, belief: BeliefModel | None = None, memory: TaskMemory | None = None,
                 task_memory: bool = True, twins: PersonTwins | None = None, person_twins: bool = True,
                 mixture: AnswerMixture | None = None, answer_mixture: bool = True, voters: VoterChoice | None = None,
                 voter_model: bool = True, blender: str | None = None, sigma: float | None = None,
                 sigma_scale: float = 1.0, task_sigma: float = 5.0, J: int = 0, ensemble: int = 5,
                 calibrate: str = "auto",
                 embedder: str | TextEmbedder = "auto", text_column: str = "text", hidden_components: int = 32,
                 meta_columns: Sequence[str] | None = None, profile_text_columns: Sequence[str] = (),
                 use_reference_distribution: bool = True, validation: str = "both",
                 valid_fraction: float = 0.15, refit: bool = False, random_state: int = 0,
                 verbose: bool = False, **flat: Any) -> None:
        self.belief, self.memory, self.twins, self.person_twins = belief, memory, twins, person_twins
        self.mixture, self.answer_mixture, self.voters, self.voter_model = mixture, answer_mixture, voters, voter_model
        self.task_memory, self.blender, self.sigma, self.sigma_scale = task_memory, blender, sigma, sigma_scale
        self.task_sigma, self.J, self.calibrate, self.embedder = task_sigma, J, calibrate, embedder
        self.ensemble = ensemble
        self.text_column, self.meta_columns, self.profile_text_columns = text_column, meta_columns, profile_text_columns
        self.use_reference_distribution, self.validation = use_reference_distribution, validation
        self.hidden_components = hidden_components
        self.valid_fraction, self.refit, self.random_state, self.verbose = valid_fraction, refit, random_state, verbose
        self.set_params(**flat)

    def __getattr__(self, name: str) -> Any:
        """Fitted attributes (``label_``, ``blender_``, ``task_offsets_`` ...) read from ``state_``."""
        st = self.__dict__.get("state_")
        if st is None or not name.endswith("_") or name.startswith("_"):
            return super().__getattr__(name)
        if name in _RENAMED:
            return _RENAMED[name](st)
        if not hasattr(st, name[:-1]):
            raise AttributeError(name)
        return getattr(st, name[:-1])

    @property
    def kind_(self) -> CrowdKind:
        return crowd_kind(self.state_.label)

    @property
    def unseen_profiles_(self) -> dict[str, dict[str, int]]:
        """Counts of profile values unseen in training met so far (``{column: {value: count}}``)."""
        assert self.state_.profile_encoder is not None
        return self.state_.profile_encoder.unseen_

    # ================================================================== fit
    def fit(self, dataset: CrowdDataset, reference: ReferenceLike = None) -> DigitalCrowd:
        """Learn the belief generator, the task memory and the blender's noise from ``dataset``."""
        kind = crowd_kind(dataset.label)
        if self.validation not in inputs.VALIDATIONS:
            raise ConfigError(f"validation '{self.validation}' is not one of {', '.join(inputs.VALIDATIONS)}")
        if self.J < 0:
            raise ConfigError(f"J (belief samples per decision) must be >= 0, got {self.J}")
        st = state.CrowdState(label=dataset.label)
        resp = dataset.responses.reset_index(drop=True)
        tasks = dataset.tasks.reset_index(drop=True).assign(task=lambda f: f["task"].astype(str))
        workers = dataset.workers.reset_index(drop=True).assign(worker=lambda f: f["worker"].astype(str))
        y = kind.encode(dataset, resp["label"])
        kind.fit_scale(st, y, resp)
        ref = fit_reference(st, kind, reference, tasks, self.hidden_components)
        ref_x, base_t, st.reference_missing, hidden = reference_features(st, kind, ref, self.use_reference_distribution)
        embedder = self.embedder if isinstance(self.embedder, TextEmbedder) else TextEmbedder(self.embedder)
        st.embedder_name = embedder.name
        st.featurizer = TaskFeaturizer(embedder, text_column=self.text_column, meta_columns=self.meta_columns)
        emb, meta = st.featurizer.fit(tasks).transform(tasks)
        task_x = np.concatenate([emb, meta, ref_x], axis=1).astype(np.float32)
        ti = pd.Index(tasks["task"]).get_indexer(resp["task"].astype(str))
        wi = pd.Index(workers["worker"]).get_indexer(resp["worker"].astype(str))
        base_t = inputs.fit_calibration(st, kind, self.calibrate, self.random_state, tasks, ti, wi, y,
                                        (emb, meta, ref_x, hidden), base_t)
        st.profile_encoder = ProfileEncoder(text_columns=self.profile_text_columns, text_encoder=embedder.embed
                                            if self.profile_text_columns else None).fit(workers, dataset.ordered_attributes)
        profile_x = st.profile_encoder.transform(workers)
        st.profile_columns = [c for c in workers.columns if c != "worker"]
        st.pool = workers  # the empirical pool of real profiles (default for n_people=)
        base = base_t[ti]
        target, target_enc = kind.targets(st, y, base)
        valid = inputs.validation_rows(self.validation, self.valid_fraction, self.random_state, ti, wi,
                                       len(tasks), len(workers))
        recon = (emb - emb.mean(axis=0)) / (emb.std(axis=0) + 1e-6)  # the decoder's target: standardised text
        data = TrainData(task_x=task_x, recon=recon.astype(np.float32),
                         profile_x=profile_x, ti=ti, wi=wi, base=base, target=target, target_enc=target_enc,
                         valid=valid, n_ref=ref_x.shape[1])
        st.belief = self._train(data, kind.loss)
        st.n_train_responses, st.tasks = len(resp), tasks
        mu = self._fit_decisions(st, kind, data, y, pd.Index(tasks["task"]), pd.Index(workers["worker"]))
        if self.voter_model and kind.votes:  # fit_voters fits copies, never the parameter itself
            st.voters, st.voter_mix = fit_voters(self.voters or VoterChoice(), st, kind, mu, y, ti, wi, valid,
                                                 ordered=dataset.ordered_attributes, text_column=self.text_column)
        self.state_ = st
        return self

    def _train(self, data: TrainData, loss: str) -> BeliefModel | BeliefEnsemble:
        """Train the belief model: ``ensemble`` networks (seeds ``random_state + k``), averaged."""
        return train_beliefs(self._belief_template().clone(verbose=self.verbose), data, loss, self.ensemble,
                             self.random_state, refit=self.refit)

    def _fit_decisions(self, st: state.CrowdState, kind: CrowdKind, data: TrainData, y: np.ndarray,
                       task_ids: pd.Index, worker_ids: pd.Index) -> np.ndarray:
        """Task memory from the training predictions, the known people's twins from what is left, then
        the blender's noise from the training residuals of the J-averaged decisions (and per-task
        ordinal noise; a smaller one for known people). Returns those decisions."""
        model, ti, wi = st.belief, data.ti, data.wi
        assert model is not None
        m, lv = model.belief(model.task_part(data.task_x), model.profile_part(data.profile_x), ti, wi)
        base = data.base + model.task_shift(data.task_x)[ti]
        if self.task_memory:  # a fresh copy: the constructor's TaskMemory is never fitted in place
            st.memory = TaskMemory(kappa=(self.memory or TaskMemory()).kappa).fit(kind, st, base + m, y, ti, task_ids)
        else:
            st.memory = TaskMemory.disabled(task_ids, base.shape[1])
        rng = np.random.default_rng(self.random_state + 104729)
        offsets = st.memory.offsets_[ti]
        mu = kind.to_label_units(st, base + offsets + model.sample_deviation(m, lv, self.J, rng))
        st.blender = kind.make_blender(st.label, self.blender, self.sigma, self.sigma_scale)
        st.blender.fit(*kind.blender_data(mu, y, ti, wi, len(task_ids), len(worker_ids)))
        if self.person_twins and kind.has_spread:
            st.twins = fit_twins(PersonTwins(**(self.twins or PersonTwins()).get_params()), kind, st,
                                 base + m + offsets, y, mu, ti, wi, len(task_ids), worker_ids)
        elif self.person_twins and kind.choice_twins:  # categorical: a known person's own answer shares
            st.twins = choice_twins.fit_choice_twins(self.twins, kind, st, base + m + offsets, y, wi, worker_ids)
        if self.answer_mixture:
            st.mixture = fit_mixture(AnswerMixture(**(self.mixture or AnswerMixture()).get_params()), st,
                                     kind.to_label_units(st, base + offsets + m), y, ti, data.valid, task_ids,
                                     kind.residuals(st, base + m, y)[0][:, 0] if kind.has_spread else None)
        if self.task_sigma > 0 and isinstance(st.blender, OrdinalBlender) and self.sigma is None:
            sig = st.blender.group_sigmas(mu[:, 0], y, ti, len(task_ids), self.task_sigma)
            seen = np.bincount(ti, minlength=len(task_ids)) > 0
            st.task_sigma = pd.Series(sig[seen], index=task_ids[seen])
        return mu

    # ================================================================== decisions
    def _inputs(self, tasks: pd.DataFrame | Sequence[str], profiles: pd.DataFrame | ProfileGenerator | None,
                n_people: int | None, reference: ReferenceLike, rng: np.random.Generator
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(tasks, profiles, reference rows) for sample / expected_decisions."""
        self._check_fitted()
        task_frame = inputs.tasks_frame(tasks, self.state_.tasks, self.text_column)
        prof = inputs.people(profiles, n_people, self.state_.pool, rng)
        return task_frame, prof, resolve(self.state_, reference, task_frame, fitting=False)

    def _decide(self, tasks: pd.DataFrame, prof: pd.DataFrame, ti: np.ndarray, wi: np.ndarray, ref: pd.DataFrame,
                rng: np.random.Generator, J: int | None = None, with_mean: bool = True
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        mu, mean, lv = decisions.decisions(self.state_, self.kind_, tasks, prof, ti, wi, ref, rng,
                                           J=self.J if J is None else J, with_mean=with_mean,
                                           use_distribution=self.use_reference_distribution, calibrate=self.calibrate)
        mu, mean = crowd_decisions(self.state_, tasks, prof, ti, wi, mu, mean)  # top-k: with the voter model
        return mu, mean, lv

    def expected_decisions(self, tasks: pd.DataFrame | Sequence[str], profiles: pd.DataFrame,
                           pairs: pd.DataFrame | None = None, reference: ReferenceLike = None,
                           random_state: int | np.random.Generator | None = None, J: int | None = None
                           ) -> pd.DataFrame:
        """Per (task, worker): ``mu`` (the J-averaged expected decision that is blended) and
        ``mu_mean`` (at the prior mean, J -> infinity), ``y_ref``; plus ``delta_sd`` for numeric labels."""
        rng = make_rng(random_state)
        task_frame, prof, ref = self._inputs(tasks, profiles, None, reference, rng)
        ti, wi = inputs.pairs_index(task_frame, prof, pairs)
        mu, mean, lv = self._decide(task_frame, prof, ti, wi, ref, rng, J=J)
        assert mean is not None
        out = pd.DataFrame({"task": task_frame["task"].to_numpy()[ti], "worker": prof["worker"].to_numpy()[wi]})
        if mu.shape[1] == 1:
            out["mu"], out["mu_mean"] = mu[:, 0], mean[:, 0]
        else:
            for c, name in enumerate(self.kind_.choice_names(self.state_.label)):
                out[f"mu_{name}"] = mu[:, c]
        out["y_ref"] = self.kind_.reference_out(ref["y_ref"].to_numpy()[ti], self.state_.ref_fill)
        if self.kind_.has_spread:
            out["delta_sd"] = self.state_.belief.deviation_sd(lv, 1)[:, 0] * self.state_.scale
        return out

    def sample(self, tasks: pd.DataFrame | Sequence[str], profiles: pd.DataFrame | ProfileGenerator | None = None,
               n_people: int | None = None, pairs: pd.DataFrame | None = None, reference: ReferenceLike = None,
               random_state: int | np.random.Generator | None = None, include_profile: bool = True) -> pd.DataFrame:
        """Virtual responses: ``task, worker, label`` (+ the virtual person's profile columns).

        ``profiles``: a frame of people (``worker`` + attributes), a :class:`ProfileGenerator` (with
        ``n_people``), or None (``n_people`` drawn from the training pool). ``pairs``: which person
        answers which task (default: everyone answers every task; top-k voters always see every item).
        ``reference``: the LLM reference for tasks the crowd has not seen (frame, Series or a function
        ``tasks -> frame``). Changes nothing on the crowd."""
        rng = make_rng(random_state)
        task_frame, prof, ref = self._inputs(tasks, profiles, n_people, reference, rng)
        pairs = self.kind_.check_pairs(pairs, len(task_frame), len(prof))
        ti, wi = inputs.pairs_index(task_frame, prof, pairs)
        mu, _, _ = self._decide(task_frame, prof, ti, wi, ref, rng, with_mean=False)
        rows = decisions.person_rows(self.state_, prof)  # per person, then per answer (-1: not known)
        rows, known = (rows[wi], rows[wi] >= 0) if rows is not None else (None, None)
        labels = self.kind_.blend(self.state_.blender, mu, ti, wi, len(task_frame), len(prof), rng,
                                  decisions.row_noise(self.state_, task_frame, ti, rows))
        labels = mix_labels(self.state_, labels, mu, task_frame["task"].to_numpy(), ti, known, rng)
        out = pd.DataFrame({"task": pd.Categorical.from_codes(ti, categories=pd.Index(task_frame["task"])),
                            "worker": pd.Categorical.from_codes(wi, categories=pd.Index(prof["worker"]).astype(str)),
                            "label": labels})
        for col in (c for c in prof.columns if c != "worker" and include_profile):
            values = prof[col]
            if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
                cat = pd.Categorical(values)
                out[col] = pd.Categorical.from_codes(cat.codes[wi], categories=cat.categories)
            else:
                out[col] = values.to_numpy()[wi]
        return out

    def _check_fitted(self) -> None:
        if "state_" not in self.__dict__:
            raise ConfigError("this DigitalCrowd is not fitted yet: call fit(dataset, reference=...) first")

    # ================================================================== persistence
    def save(self, directory: str | Path) -> Path:
        """Write the fitted crowd to ``directory`` (safetensors weights + JSON; no pickle, no data texts)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.state_.belief.save(directory)
        atomic_write_json(directory / "crowd.json", state.to_json(self.state_, self._hyper(), directory))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DigitalCrowd:
        """Read a crowd written by :meth:`save`. Refuses a newer format version with a clear error."""
        return state.load(Path(directory), lambda hyper: cls(**hyper))
