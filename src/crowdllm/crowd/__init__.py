"""The digital crowd, as a package of small parts (see docs/architecture.md).

- :mod:`.kinds` -- one object per label kind: everything that differs by kind.
- :mod:`.reference` -- the LLM reference table (``y_ref``, ``p_*``) and how the crowd reads it.
- :mod:`.memory` -- the task memory (shrunken per-task offsets), a small estimator.
- :mod:`.twins` -- digital twins of known people (their own offset, scale use, bend and noise), a small estimator.
- :mod:`.choice_twins` -- the twins of categorical crowds (each known person's own answer shares).
- :mod:`.voters` -- top-k votes: each voter's utilities from their profile (a conditional logit).
- :mod:`.inputs` -- task features, reference calibration, profiles, validation rows.
- :mod:`.state` -- the fitted state (one dataclass) and its save/load.
- :mod:`.model` -- :class:`DigitalCrowd`, composing them scikit-learn style.
"""

from crowdllm.crowd.choice_twins import ChoiceTwins
from crowdllm.crowd.kinds import KINDS, CrowdKind, crowd_kind
from crowdllm.crowd.memory import TaskMemory
from crowdllm.crowd.model import DigitalCrowd
from crowdllm.crowd.reference import ReferenceLike, reference_frame
from crowdllm.crowd.state import FORMAT_VERSION, CrowdState
from crowdllm.crowd.twins import PersonTwins
from crowdllm.crowd.voters import VoterChoice

__all__ = ["FORMAT_VERSION", "KINDS", "ChoiceTwins", "CrowdKind", "CrowdState", "DigitalCrowd", "PersonTwins", "ReferenceLike",
           "TaskMemory", "VoterChoice", "crowd_kind", "reference_frame"]
