"""Hyper-parameters of the DigitalCrowd, scikit-learn style: ``get_params`` / ``set_params``.

Each hyper-parameter is written once: the crowd's own in ``DigitalCrowd.__init__``, the belief
model's in :class:`~crowdllm.belief.cvae.BeliefModel`, the task memory's in
:class:`~crowdllm.crowd.memory.TaskMemory`, the twins' in :class:`~crowdllm.crowd.twins.PersonTwins`
(each of its parameters may be passed flat, ``twin_kappa``, ``twin_curve_kappa`` ...), the seen-task mixture's in
:class:`~crowdllm.crowd.mixture.AnswerMixture` (``mixture_k``) and the top-k voter model's in
:class:`~crowdllm.crowd.voters.VoterChoice` (``voter_alpha``). For convenience (and for crowds saved before the parts
were split) a belief hyper-parameter may be given flat -- ``DigitalCrowd(epochs=50)`` is
``DigitalCrowd(belief=BeliefModel(epochs=50))`` -- and ``memory_kappa=k`` is ``memory=TaskMemory(k)``.

>>> from crowdllm.crowd import DigitalCrowd
>>> crowd = DigitalCrowd(epochs=50, memory_kappa=None)
>>> crowd.belief.epochs, crowd.memory.kappa, crowd.get_params()["belief__epochs"]
(50, None, 50)
>>> crowd.set_params(belief__latent_dim=4).belief.latent_dim
4
>>> crowd.epochs = 20  # a flat name reads and writes the belief model's parameter
>>> crowd.belief.epochs, crowd.epochs
(20, 20)
"""

from __future__ import annotations

import inspect
from typing import Any

from crowdllm.belief.cvae import BeliefModel
from crowdllm.crowd.memory import TaskMemory
from crowdllm.crowd.mixture import AnswerMixture
from crowdllm.crowd.twins import PersonTwins
from crowdllm.crowd.voters import VoterChoice

BELIEF_PARAMS = tuple(n for n in inspect.signature(BeliefModel.__init__).parameters
                      if n not in ("self", "random_state", "verbose"))


class CrowdParams:
    """``get_params`` / ``set_params`` over the constructor's arguments and the nested belief model."""

    belief: BeliefModel | None
    memory: TaskMemory | None
    twins: PersonTwins | None
    mixture: AnswerMixture | None
    voters: VoterChoice | None

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        names = [n for n in inspect.signature(type(self).__init__).parameters if n not in ("self", "flat")]
        out = {n: getattr(self, n) for n in names}
        if deep:
            out.update({f"belief__{k}": v for k, v in self._belief_template().get_params().items()})
        return out

    def set_params(self, **params: Any) -> Any:
        """Set parameters; ``belief__x`` or a bare belief hyper-parameter name (``epochs``) reaches the
        belief model, ``memory_kappa`` the task memory."""
        belief = {k.removeprefix("belief__"): params.pop(k) for k in list(params)
                  if k.removeprefix("belief__") in BELIEF_PARAMS}
        if belief:
            self.belief = self._belief_template().clone(**belief)
        if "memory_kappa" in params:
            self.memory = TaskMemory(kappa=params.pop("memory_kappa"))
        twin = {k.removeprefix("twin_"): params.pop(k) for k in list(params)
                if k.startswith("twin_") and k.removeprefix("twin_") in PersonTwins().get_params()}
        # flat from a command line every value is a word: "none" is None (twin_curve_kappa=none: the line alone)
        twin = {k: None if isinstance(v, str) and v.strip().lower() == "none" else v for k, v in twin.items()}
        if twin:
            self.twins = PersonTwins(**{**(self.twins or PersonTwins()).get_params(), **twin})
        if "mixture_k" in params:
            self.mixture = AnswerMixture(k=params.pop("mixture_k"))
        if "voter_alpha" in params:
            self.voters = VoterChoice(**{**(self.voters or VoterChoice()).get_params(), "alpha": params.pop("voter_alpha")})
        for name, value in params.items():
            if name not in self.get_params(deep=False):
                raise TypeError(f"DigitalCrowd has no parameter '{name}'")
            setattr(self, name, value)
        return self

    def __getattr__(self, name: str) -> Any:
        """A flat belief hyper-parameter (``crowd.epochs``) or ``memory_kappa`` reads the nested estimator."""
        if name in BELIEF_PARAMS and "belief" in self.__dict__:
            return getattr(self._belief_template(), name)
        if name == "memory_kappa" and "memory" in self.__dict__:
            return (self.memory or TaskMemory()).kappa
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        """``crowd.epochs = 50`` is ``crowd.set_params(epochs=50)``: never a copy the belief model ignores."""
        if name in BELIEF_PARAMS or name == "memory_kappa":
            self.set_params(**{name: value})
        else:
            super().__setattr__(name, value)

    def _belief_template(self) -> BeliefModel:
        return self.belief if self.belief is not None else BeliefModel()

    def _hyper(self) -> dict[str, Any]:
        """The parameters as flat JSON values (the saved ``hyper``: ``DigitalCrowd(**hyper)`` rebuilds it)."""
        nested = ("belief", "memory", "twins", "mixture", "voters", "verbose")
        out = {k: v for k, v in self.get_params(deep=False).items() if k not in nested}
        out.update({k: self._belief_template().get_params()[k] for k in BELIEF_PARAMS})
        out["memory_kappa"] = (self.memory or TaskMemory()).kappa
        out.update({f"twin_{k}": v for k, v in (self.twins or PersonTwins()).get_params().items()})
        out["mixture_k"] = (self.mixture or AnswerMixture()).k
        out["voter_alpha"] = (self.voters or VoterChoice()).alpha
        out["meta_columns"] = list(self.meta_columns) if self.meta_columns is not None else None
        out["profile_text_columns"] = list(self.profile_text_columns)
        out["embedder"] = self.embedder if isinstance(self.embedder, str) else self.embedder.model
        return out

