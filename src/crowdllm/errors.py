"""One exception hierarchy for the whole library.

The CLI catches :class:`CrowdLLMError`, prints ``str(err)`` on one line and exits with code 2.
Messages name the file, row and column (data errors) or the setting (config/backend errors).
"""

from __future__ import annotations


class CrowdLLMError(Exception):
    """Base class of every error crowdllm raises on purpose (user-facing, one line)."""


class CrowdDataError(CrowdLLMError):
    """Bad input data. Names the file, the row (1-based line in the file, header = line 1 for CSV;
    record number for JSONL/Parquet) and the column where known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class ConfigError(CrowdLLMError):
    """Bad setting, option, column map, saved-model config, or unknown name. Names the setting."""


class BackendError(CrowdLLMError):
    """An LLM backend failed in a way retries could not fix (unreachable server, bad API key, ...)."""
