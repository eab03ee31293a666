"""The registry of public data sets: where each file lives (URL + sha256), and how to fetch it safely.

A registered file is looked for, in order:

1. in the local mirror, ``$CROWDLLM_DATA_PATH`` (one folder or several joined by ``os.pathsep``), as
   ``<mirror>/<subdir>/<filename>`` or ``<mirror>/<filename>``; its sha256 is checked there too;
2. in the cache, ``$CROWDLLM_CACHE/data/<subdir>/<filename>``, if its sha256 matches;
3. on the web: streamed to a temporary file in the cache folder, checked, then renamed into place.

A checksum mismatch or a dropped connection leaves nothing in the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import importlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crowdllm._io import cache_dir
from crowdllm.data.dataset import CrowdDataset, LabelSpec
from crowdllm.data.loaders import did_you_mean, load_responses_file
from crowdllm.errors import ConfigError, CrowdDataError, CrowdLLMError

DATA_PATH_ENV = "CROWDLLM_DATA_PATH"
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 16


class DownloadError(CrowdLLMError):
    """A registered file could not be downloaded (network error, HTTP error, connection dropped)."""


@dataclass(frozen=True)
class DataFile:
    """One file of a registered data set."""

    filename: str
    url: str
    sha256: str | None


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set.

    ``files`` are ``(filename, url, sha256)``; ``builder`` names a function in
    :mod:`crowdllm.data.builtin` that turns the fetched files into a :class:`CrowdDataset`.
    ``tested`` is False for entries listed by URL whose files were not available to verify here.
    ``counts`` are the documented sizes (tasks, workers, responses) shown by ``crowdllm data list``.
    """

    name: str
    description: str
    files: tuple[DataFile, ...]
    licence: str
    citation: str
    label: LabelSpec | None
    builder: str
    tested: bool = True
    subdir: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        files = tuple(f if isinstance(f, DataFile) else DataFile(*f) for f in self.files)
        object.__setattr__(self, "files", files)
        if not self.subdir:
            object.__setattr__(self, "subdir", self.name)

    def file(self, filename: str) -> DataFile:
        for f in self.files:
            if f.filename == filename:
                return f
        raise KeyError(filename)

    def fetch(self, filename: str) -> Path:
        f = self.file(filename)
        return fetch_file(f.filename, f.url, f.sha256, self.subdir)


#: Every registered data set by name (filled by :mod:`crowdllm.data.builtin`).
REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`REGISTRY` (a name may be registered once)."""
    if spec.name in REGISTRY:
        raise ConfigError(f"a data set named '{spec.name}' is already registered")
    REGISTRY[spec.name] = spec
    return spec


# ---------------------------------------------------------------------------------------------- fetching
def data_paths() -> list[Path]:
    """The local mirror folders from ``$CROWDLLM_DATA_PATH`` (empty parts ignored)."""
    raw = os.environ.get(DATA_PATH_ENV, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(filename: str, url: str, sha256: str | None, subdir: str = "", *,
               timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """A local path to a registered file: from the mirror, else the cache, else downloaded.

    ``sha256=None`` means no checksum is known: the file is used as found, with a warning.
    Raises :class:`CrowdDataError` on a checksum mismatch (naming the file or URL and both hashes)
    and :class:`DownloadError` when the download fails; neither leaves a file in the cache.
    """
    for root in data_paths():
        for candidate in (root / subdir / filename, root / filename):
            if candidate.is_file():
                _verify(candidate, sha256, where=f"local mirror copy of {url}", file=str(candidate))
                return candidate
    target = cache_dir() / "data" / subdir / filename if subdir else cache_dir() / "data" / filename
    if target.is_file():
        if sha256 is None:
            _warn_no_checksum(filename, url)
            return target
        if sha256_of(target) == sha256.lower():
            return target
        target.unlink()  # a stale or damaged cache entry: fetch it again
    _download(url, target, sha256, timeout=timeout,
              hint=f"or download it by hand to ${DATA_PATH_ENV}/{subdir + '/' if subdir else ''}{filename}")
    return target


def _verify(path: Path, sha256: str | None, *, where: str, file: str) -> None:
    if sha256 is None:
        _warn_no_checksum(path.name, where)
        return
    actual = sha256_of(path)
    if actual != sha256.lower():
        raise CrowdDataError(
            f"checksum mismatch for the {where}: expected sha256 {sha256}, got {actual} "
            "(the file is damaged or a different version)",
            file=file,
        )


def _warn_no_checksum(filename: str, where: str) -> None:
    warnings.warn(f"no sha256 checksum is known for {filename} ({where}); its content is not verified",
                  UserWarning, stacklevel=3)


def _download(url: str, target: Path, sha256: str | None, *, timeout: float, hint: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        request = urllib.request.Request(url, headers={"User-Agent": "crowdllm"})
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as resp:
                length_header = resp.headers.get("Content-Length")
                expected = int(length_header) if length_header and length_header.isdigit() else None
                with _progress(target.name, expected) as advance:
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        advance(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        except urllib.error.HTTPError as err:
            raise DownloadError(f"could not download {url}: HTTP {err.code} {err.reason}; check the URL {hint}") from None
        except http.client.IncompleteRead as err:
            got = received + len(err.partial)
            raise DownloadError(
                f"could not download {url}: the connection closed after {got:,} of "
                f"{got + (err.expected or 0):,} bytes; try again {hint}"
            ) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise DownloadError(f"could not download {url}: {reason}; try again {hint}") from None
        if expected is not None and received != expected:
            raise DownloadError(
                f"could not download {url}: the connection closed after {received:,} of {expected:,} "
                f"bytes; try again {hint}"
            )
        if sha256 is None:
            _warn_no_checksum(target.name, url)
        elif digest.hexdigest() != sha256.lower():
            raise CrowdDataError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest.hexdigest()}; "
                "nothing was saved",
                file=target.name,
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _progress(name: str, total: int | None):  # type: ignore[no-untyped-def]
    """A rich progress bar on an interactive terminal for downloads over 1 MB; else a no-op."""
    if not (sys.stderr.isatty() and (total is None or total > 1_000_000)):
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), transient=True) as bar:
        task = bar.add_task(f"downloading {name}", total=total)
        yield lambda n: bar.advance(task, n)


# ---------------------------------------------------------------------------------------------- loading
def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    column_map: str | Mapping[str, Any] | None = None,
    label: LabelSpec | None = None,
    **kw: Any,
) -> CrowdDataset:
    """A registered data set by name, or a user's long-form file (see :func:`load_responses_file`).

    ``column_map``/``label``/keyword options go to the file loader, or to an untested registered
    entry whose exact column names are not verified. An unknown name that is not a file raises
    :class:`ConfigError` listing the registered names.
    """
    key = str(name_or_path)
    spec = REGISTRY.get(key)
    if spec is not None:
        if not spec.tested:
            warnings.warn(
                f"data set '{spec.name}' is listed by URL but NOT verified in this project (its files "
                f"were not available to test against); it needs {', '.join(f.filename for f in spec.files)} "
                f"in ${DATA_PATH_ENV}/{spec.subdir}/ or downloads it from {spec.files[0].url}",
                UserWarning, stacklevel=2,
            )
        elif column_map is not None or label is not None:
            raise ConfigError(
                f"data set '{spec.name}' has a fixed layout; a column map or label spec applies to your "
                "own files only"
            )
        builder: Callable[..., CrowdDataset] = getattr(importlib.import_module("crowdllm.data.builtin"),
                                                       spec.builder)
        if spec.tested:
            return builder(spec, **kw)
        return builder(spec, column_map=column_map, label=label, **kw)
    path = Path(key).expanduser()
    if path.is_file():
        return load_responses_file(path, column_map=column_map, label=label, **kw)
    names = sorted(REGISTRY)
    looks_like_file = any(sep in key for sep in ("/", os.sep)) or Path(key).suffix != ""
    what = f"no such file '{key}'" if looks_like_file else f"no data set named '{key}'"
    also = " (and no registered data set of that name)" if looks_like_file else " and no such file"
    raise ConfigError(f"{what}{also}; registered data sets: {', '.join(names)}{did_you_mean(key, names)}")
