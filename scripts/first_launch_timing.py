"""How long a first launch takes until the chat answers: the app's own start-up (app.ensure_index, CareCiteApp) on
an empty data dir, then one question through the chat's Assistant. The background load is started and runs for
--background-s seconds so its chunks/s are measured too; then the process stops (the next launch would resume).

    python scripts/first_launch_timing.py --data-dir /tmp/carecite-first [--preset demo] [--background-s 60]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

T0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--preset", default="demo", help="the app's default: demo")
    p.add_argument("--first-docs", type=int, default=None)
    p.add_argument("--question", default="What are the symptoms of breast cancer?")
    p.add_argument("--background-s", type=float, default=60.0)
    args = p.parse_args()
    from app import CareCiteApp, ensure_index
    from carecite.settings import Settings
    s = Settings.from_name(args.preset)
    s.paths.data_dir = Path(args.data_dir)
    if (s.paths.data_dir / "index").exists():
        raise SystemExit(f"{s.paths.data_dir} already holds an index: give an empty data dir")
    res = {"preset": args.preset, "backend_setting": s.embedder.backend, "cpus": os.cpu_count(),
           "load_start": round(os.getloadavg()[0], 2), "imports_s": round(time.perf_counter() - T0, 1)}
    index, loader = ensure_index(s, first_docs=args.first_docs)
    first = loader.state.reports[-1]
    res.update({"first_slice_s": round(time.perf_counter() - T0, 1), "first_slice_chunks": first.chunks_written,
                "first_slice_embed_index_chunks_per_s": round(first.chunks_per_s, 1),
                "first_slice_ingest_s": round(first.seconds, 1), "backend": s.embedder.backend})
    app = CareCiteApp(s, index, loader=loader)
    res["chat_ready_s"] = round(time.perf_counter() - T0, 1)
    loader.start()
    t_q = time.perf_counter()
    quick = None
    with app._answering():
        for ev in app.assistant.stream(args.question):
            if ev["type"] == "quick" and quick is None:
                quick = time.perf_counter() - T0
            if ev["type"] == "answer":
                ans = ev["answer"]
    res.update({"first_quick_answer_s": round(quick, 1) if quick else None,
                "first_full_answer_s": round(time.perf_counter() - T0, 1),
                "answer_seconds": round(time.perf_counter() - t_q, 1), "abstained": ans.abstained,
                "answer": ans.answer[:300]})
    end = time.perf_counter() + args.background_s
    w0 = loader.state.written
    t_w = time.perf_counter()
    while time.perf_counter() < end and not loader.done:
        time.sleep(1)
    st = loader.state
    res.update({"background_stage": st.stage, "background_docs_to_index": st.docs_read,
                "background_written": st.written, "background_pending": st.pending,
                "background_chunks_per_s_while_measured": round((st.written - w0) / (time.perf_counter() - t_w), 1),
                "progress_line": loader.progress_line(), "load_end": round(os.getloadavg()[0], 2)})
    print(json.dumps(res, indent=1))
    os._exit(0)  # stop mid-way on purpose, as a killed app would


if __name__ == "__main__":
    sys.exit(main())
