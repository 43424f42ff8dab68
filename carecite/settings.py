"""One typed settings object for the whole project (env prefix CARECITE_, nested with __).

    Settings()                      # defaults + environment
    Settings.from_name("test")      # a named preset, environment still applies on top
    CARECITE_RETRIEVAL__RRF_K=30    # override one field
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class PathSettings(BaseModel):
    data_dir: Path = Field(PROJECT_ROOT / ".carecite", description="Index, manifests, caches, audit log.")
    data_mirror: Path = Field(PROJECT_ROOT.parent / "shared" / "data",
                              description="Folder holding the public data sets (medquad/, aci-bench/, ...).")
    model_cache: Path | None = Field(None, description="Model files assembled from packages, shared by every data "
                                     "dir; default $XDG_CACHE_HOME/carecite or ~/.cache/carecite.")


class IndexSettings(BaseModel):
    backend: Literal["edge", "server"] = "edge"
    path: Path | None = Field(None, description="Edge shard folder; default <data_dir>/index.")
    url: str | None = Field(None, description="Qdrant server URL for backend=server.")
    api_key: str | None = None
    collection: str = "carecite"


class EmbedderSettings(BaseModel):
    model: str = Field("all-MiniLM-L6-v2", description="'all-MiniLM-L6-v2' (packaged), a local path or a hub name.")
    # "onnx-int8": the packaged model as an int8 ONNX graph on ONNX Runtime (no torch; cosine >= 0.995 to torch's
    # vectors; `carecite bench` compares their speed); "torch": sentence-transformers. An index records the backend
    # that built it and refuses another; "auto" follows the index (an index without a record: torch) and uses
    # torch for a new one (onnx-int8 not yet measured faster on an idle machine).
    backend: Literal["auto", "onnx-int8", "torch"] = "auto"
    batch_size: int = 64  # torch
    onnx_batch_size: int = 32  # onnx-int8 (texts sorted by token length first)
    device: str = "cpu"


class ChunkSettings(BaseModel):
    max_tokens: int = 256
    overlap_tokens: int = 32
    max_file_mb: float = 50.0


class RetrievalSettings(BaseModel):
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    top_k: int = 10
    # Tuned on the tune half of clinical-dev (`carecite eval retrieval ... --tune`); see the README table.
    rrf_k: int = 30
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    prefetch_limit: int = 100
    reranker: str | None = Field(None, description="Cross-encoder path or hub name; off by default (no offline weights).")


class PhiSettings(BaseModel):
    policy: Literal["reject", "mask"] = "reject"


class GeneratorSettings(BaseModel):
    kind: Literal["local", "openai", "extractive"] = "local"
    local_model: str = Field("qwen2.5-coder-1.5b", description="'qwen2.5-coder-1.5b', 'smollm2' or a .gguf path.")
    draft_model: str | None = Field(None, description="Speculative-decoding draft for the local model: "
                                    "'qwen2.5-coder-0.5b' or a .gguf path with the same tokenizer; off when empty.")
    n_threads: int = 2
    n_ctx: int = 4096
    max_tokens: int = 384
    temperature: float = 0.0
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = 120.0


class AnswerSettings(BaseModel):
    evidence_tokens: int = 1000  # passages shown to the generator (embedder tokens); prompt size drives CPU latency
    max_passages: int = 5
    # LLM prompts: the evidence is cut to the sentences closest to the question within this many embedder
    # tokens (prompt prefill dominates CPU latency); 0 sends whole passages. The quick answer uses the same text.
    # 400 from `carecite bench answer` (20 questions, idle 2 cores): total p50 13.5 s against 17.2 s at 600.
    llm_evidence_tokens: int = 400
    # Abstain when the best passage's dense cosine is below this. 0.5 from the liveqa tune half (real questions,
    # full default index): keeps 97% of answerable questions, abstains on 81% of hand-written unanswerable ones.
    min_retrieval_score: float = 0.5
    support_threshold: float = 0.7  # verifier score a cited sentence needs (eval/verification.py calibrates)
    repair_citations: bool = True  # re-cite a sentence to the one passage that clearly supports it (noted)
    drop_unsupported: bool = True  # a sentence the verifier rejects is withheld (and counted in the note)
    abstain_unsupported_fraction: float = 0.5  # abstain when more than this share of claims fails verification
    max_question_chars: int = 2000


class AuditSettings(BaseModel):
    enabled: bool = True
    path: Path | None = Field(None, description="Default <data_dir>/audit/answers.jsonl.")
    max_bytes: int = 20_000_000
    backups: int = 5


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    api_token: str | None = None
    max_body_bytes: int = 1_000_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARECITE_", env_nested_delimiter="__", extra="forbid")

    paths: PathSettings = PathSettings()
    index: IndexSettings = IndexSettings()
    embedder: EmbedderSettings = EmbedderSettings()
    chunking: ChunkSettings = ChunkSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    phi: PhiSettings = PhiSettings()
    generator: GeneratorSettings = GeneratorSettings()
    answer: AnswerSettings = AnswerSettings()
    audit: AuditSettings = AuditSettings()
    server: ServerSettings = ServerSettings()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        # The operator's environment wins over presets and code defaults.
        return env_settings, init_settings, dotenv_settings, file_secret_settings

    @property
    def index_path(self) -> Path:
        return Path(self.index.path or self.paths.data_dir / "index")

    @property
    def audit_path(self) -> Path:
        return Path(self.audit.path or self.paths.data_dir / "audit" / "answers.jsonl")

    @classmethod
    def from_name(cls, name: str, **overrides) -> "Settings":
        """A named preset; explicit overrides win over the preset, the environment wins over both."""
        if name not in PRESETS:
            raise ValueError(f"unknown settings preset {name!r}; choose one of {sorted(PRESETS)}")
        merged = _deep_merge(PRESETS[name], overrides)
        return cls(**merged)


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


PRESETS: dict[str, dict] = {
    # The shipped default: Edge index, Qwen2.5-Coder-1.5B, reject PHI.
    "default": {},
    # Bundled demo corpus: ACI-Bench notes are synthetic, their invented names are masked, not rejected.
    "demo": {"phi": {"policy": "mask"}},
    # Fast and deterministic: no LLM.
    "fast": {"generator": {"kind": "extractive"}},
    # Tests: the 135M model keeps the local generator path cheap.
    "test": {"generator": {"kind": "local", "local_model": "smollm2", "max_tokens": 128, "n_ctx": 2048}},
    # A Qdrant cluster and an OpenAI-compatible model server (fill url/base_url from the environment).
    "server": {"index": {"backend": "server"}, "generator": {"kind": "openai"}},
}


def settings_from_args(args) -> Settings:
    """Settings for a command line: --preset, --data-dir and any generator options the command has."""
    s = Settings.from_name(args.preset) if getattr(args, "preset", None) else Settings()
    if getattr(args, "data_dir", None):
        s.paths.data_dir = Path(args.data_dir)
    if getattr(args, "generator", None):
        s.generator.kind = args.generator
    for key in ("base_url", "model", "api_key", "max_tokens", "n_ctx"):
        if getattr(args, key, None) is not None:
            setattr(s.generator, key, getattr(args, key))
    return s
