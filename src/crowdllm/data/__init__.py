"""Data: the crowd data model, loaders (CSV/JSONL/Parquet + column map), registry of public sets, splits."""

from crowdllm.data import builtin as _builtin  # noqa: F401  (registers the public data sets)
from crowdllm.data.dataset import LABEL_KINDS, CrowdDataset, LabelSpec
from crowdllm.data.loaders import (
    dataset_from_frame,
    infer_label_spec,
    join_tables,
    load_joined_dataset,
    load_responses_file,
    load_table,
    parse_column_map,
)
from crowdllm.data.registry import (
    REGISTRY,
    DataFile,
    DatasetSpec,
    DownloadError,
    fetch_file,
    load_dataset,
    register_dataset,
)
from crowdllm.data.splits import Split, split_dataset

__all__ = [
    "LABEL_KINDS",
    "REGISTRY",
    "CrowdDataset",
    "DataFile",
    "DatasetSpec",
    "DownloadError",
    "LabelSpec",
    "Split",
    "dataset_from_frame",
    "fetch_file",
    "infer_label_spec",
    "join_tables",
    "load_joined_dataset",
    "load_dataset",
    "load_responses_file",
    "load_table",
    "parse_column_map",
    "register_dataset",
    "split_dataset",
]
