"""Profiles: who the virtual participants are (pool, marginals, raked joint model), who takes part in
which task (participation), and how a profile becomes numbers (encoding)."""

from crowdllm.profiles.encoding import ProfileEncoder
from crowdllm.profiles.generator import ProfileGenerator
from crowdllm.profiles.joint import RakedProfiles, ipf
from crowdllm.profiles.marginals import MarginalProfiles
from crowdllm.profiles.participation import participation
from crowdllm.profiles.pool import PoolProfiles

__all__ = [
    "MarginalProfiles",
    "PoolProfiles",
    "ProfileEncoder",
    "ProfileGenerator",
    "RakedProfiles",
    "ipf",
    "participation",
]
