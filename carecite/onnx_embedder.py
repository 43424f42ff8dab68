"""all-MiniLM-L6-v2 through ONNX Runtime (embedder.backend "onnx-int8"): the same sentence-transformers recipe
(WordPiece from the packaged tokenizer.json, at most 256 tokens, mean pooling over the attention mask, L2
normalisation) on an int8 ONNX graph, without importing torch (`carecite bench` compares the two backends).

carecite.models resolves and sha256-checks both files before this class sees them; nothing here reads other files.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from carecite.query_memo import QueryMemo


class OnnxEmbedder:
    """Dense text embedder on ONNX Runtime with the model's own tokenizer (for chunk sizing), like models.Embedder."""

    backend = "onnx-int8"

    def __init__(self, name: str, model_file: Path, tokenizer_file: Path, *, batch_size: int = 32,
                 max_seq_length: int = 256, threads: int = 0):
        import onnxruntime as ort
        from tokenizers import Tokenizer
        self.name, self.path = name, str(model_file)
        self.batch_size, self.max_seq_length = batch_size, max_seq_length
        # Two tokenizers with fixed settings (never changed later, so both are safe to share between threads):
        # one counts tokens exactly as chunking needs them, one makes the model's input.
        self._counter = Tokenizer.from_file(str(tokenizer_file))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._encoder = Tokenizer.from_file(str(tokenizer_file))
        self._encoder.enable_truncation(max_seq_length)
        self._encoder.no_padding()  # batches are padded here, after sorting by length
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # No busy-waiting between batches: the CPU is shared (the LLM and the chat run in the same process while the
        # corpus loads), and spinning threads would take cores from them (not measured here: the machine was busy).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(model_file), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - a damaged graph that still matched no pin (a user path)
            raise RuntimeError(f"ONNX Runtime could not load {model_file}: {e}") from e
        self._inputs = [i.name for i in self.session.get_inputs()]
        outs = self.session.get_outputs()
        names = [o.name for o in outs]
        self._output = "last_hidden_state" if "last_hidden_state" in names else names[0]
        self._lock = threading.Lock()  # one batch at a time: a query waits at most one batch behind an ingest
        self._queries = QueryMemo()  # one question is searched by several steps
        dim = next(o.shape[-1] for o in outs if o.name == self._output)
        self.dim = dim if isinstance(dim, int) else int(self._forward(self._encoder.encode_batch(["dim"])).shape[1])

    def tokenize(self, text: str) -> list[str]:
        return self._counter.encode(text, add_special_tokens=False).tokens

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def _forward(self, encs) -> np.ndarray:
        """Unit vectors of tokenized texts: one padded batch through the graph, mean-pooled over the mask."""
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        with self._lock:
            hidden = self.session.run([self._output], {k: feed[k] for k in self._inputs})[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def embed(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        """Unit vectors, in the order given. Texts are batched by token length (longest first), so a batch
        pads to a length close to its own texts' and short chunks do not pay for long ones."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encs = self._encoder.encode_batch(list(texts))
        order = sorted(range(len(encs)), key=lambda i: -len(encs[i].ids))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        from tqdm.auto import tqdm
        for s in tqdm(range(0, len(texts), self.batch_size), desc="embedding", disable=not show_progress):
            idx = order[s:s + self.batch_size]
            out[idx] = self._forward([encs[i] for i in idx])
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._queries.get(text, lambda t: self.embed([t])[0])
