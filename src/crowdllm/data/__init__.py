"""Data: the crowd data model, loaders (CSV/JSONL/Parquet + column map), registry of public sets, splits."""

from crowdllm.data.dataset import LABEL_KINDS, CrowdDataset, LabelSpec

__all__ = ["LABEL_KINDS", "CrowdDataset", "LabelSpec"]
