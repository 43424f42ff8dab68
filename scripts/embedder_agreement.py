"""Do two embedder backends give the same vectors? Cosine per chunk on N real chunks of the default corpus.

    python scripts/embedder_agreement.py --chunks 1000 [--backends torch,onnx-int8] [--json]

Chunks are taken evenly from MedQuAD, the OpenStax nursing books and ACI-Bench (the default corpus), cut by the
real chunker. Prints min / p1 / mean cosine and each backend's raw throughput, with the load average.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carecite.models import get_embedder  # noqa: E402
from carecite.settings import Settings  # noqa: E402
from ingest.chunker import chunk_document  # noqa: E402
from ingest.readers import read_corpus  # noqa: E402

SHARE = {"medquad": 0.6, "openstax-nursing": 0.3, "aci-bench": 0.1}


def real_chunks(settings: Settings, n: int, count_tokens) -> list[str]:
    out = []
    for name, share in SHARE.items():
        want, got = int(round(n * share)), []
        for doc in itertools.islice(read_corpus(name, settings.paths.data_mirror), 4000):
            got += [c.text for c in chunk_document(doc, count_tokens, settings.chunking.max_tokens,
                                                   settings.chunking.overlap_tokens)]
            if len(got) >= want * 5:
                break
        out += got[::max(1, len(got) // want)][:want]  # spread over the documents read
    return out[:n]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", type=int, default=1000)
    p.add_argument("--backends", default="torch,onnx-int8")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    s = Settings()
    a_name, b_name = args.backends.split(",")
    a, b = get_embedder(s, a_name), get_embedder(s, b_name)
    texts = real_chunks(s, args.chunks, a.count_tokens)
    res = {"chunks": len(texts), "cpus": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)}
    vecs = {}
    for name, e in ((a_name, a), (b_name, b)):
        e.embed(texts[:8])  # warm
        t0 = time.perf_counter()
        vecs[name] = e.embed(texts)
        res[f"{name}_chunks_per_s"] = round(len(texts) / (time.perf_counter() - t0), 1)
    cos = (vecs[a_name] * vecs[b_name]).sum(axis=1)
    res.update({"cosine_min": round(float(cos.min()), 5), "cosine_p1": round(float(np.percentile(cos, 1)), 5),
                "cosine_mean": round(float(cos.mean()), 5), "below_0.995": int((cos < 0.995).sum()),
                "load_after": round(os.getloadavg()[0], 2)})
    print(json.dumps(res, indent=1) if args.json else
          f"{res['chunks']} real chunks, {a_name} vs {b_name}: cosine min {res['cosine_min']}, p1 {res['cosine_p1']}, "
          f"mean {res['cosine_mean']}, {res['below_0.995']} below 0.995; {a_name} {res[f'{a_name}_chunks_per_s']} "
          f"chunks/s, {b_name} {res[f'{b_name}_chunks_per_s']} chunks/s; load average {res['load_before']} -> "
          f"{res['load_after']} ({res['cpus']} CPUs)")
    return 0 if res["below_0.995"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
