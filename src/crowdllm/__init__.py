"""crowdllm: digital crowds that answer like real, diverse groups of people.

The package mirrors the CrowdLLM method's stages (Lin et al., arXiv 2512.07890):
data -> profiles -> llm (reference) -> belief (CVAE) -> blend -> aggregate -> evaluate,
plus crowdsourcing pipelines run by virtual workers (Wu et al., arXiv 2307.10168).
"""

from crowdllm.errors import BackendError, ConfigError, CrowdDataError, CrowdLLMError

__version__ = "0.1.0"

__all__ = ["BackendError", "ConfigError", "CrowdDataError", "CrowdLLMError", "__version__"]
