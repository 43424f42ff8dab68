"""Shared by the ingest tests."""
from __future__ import annotations


class FailingEmbedder:
    """The real embedder, made to fail after N batches: stands in for a crash or Ctrl-C mid-ingest."""

    def __init__(self, inner, fail_after: int):
        self.inner, self.fail_after, self.calls = inner, fail_after, 0
        self.dim, self.count_tokens, self.max_seq_length = inner.dim, inner.count_tokens, inner.max_seq_length
        self.name, self.backend = inner.name, inner.backend  # the index records the embedder that wrote it

    def embed(self, texts):
        self.calls += 1
        if self.calls > self.fail_after:
            raise KeyboardInterrupt("interrupted")
        return self.inner.embed(texts)
