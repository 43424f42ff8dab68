"""Bounded load test of the HTTP API: C concurrent clients x N questions each, non-streaming chat completions.

    python -m eval.loadtest --base-url http://127.0.0.1:8000            # a running `carecite serve`
    python -m eval.loadtest --serve --preset fast                        # starts its own server (subprocess)

Reports requests, errors (non-200, or a body without the "carecite" answer), wall time, throughput and
p50/p95/max latency. A benchmark, not a test: run it against the extractive generator for the engine's cost.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

QUESTIONS = [
    "What are the symptoms of breast cancer?",
    "How is acute myeloid leukemia treated?",
    "What are the risk factors for colorectal cancer?",
    "How is type 2 diabetes diagnosed?",
    "What are the side effects of chemotherapy?",
    "What is the outlook for Hodgkin lymphoma?",
    "How can high blood pressure be prevented?",
    "What foods are good sources of vitamin D?",
    "What are the stages of prostate cancer?",
    "Who is at risk for skin cancer?",
    "What tests diagnose lung cancer?",
    "What is the treatment for knee pain after a fall?",
    "How should a nurse monitor a patient on anticoagulants?",
    "What causes iron deficiency anemia?",
    "What are the genetic changes related to retinoblastoma?",
    "How is childhood brain tumor treated?",
    "What are the symptoms of an ER follow-up for hypertension?",
    "What is the recommended daily intake of fiber?",
    "How is melanoma staged?",
    "What are late effects of treatment for childhood cancer?",
]


def _one(client: httpx.Client, question: str) -> tuple[float, str | None, dict | None]:
    """(latency s, error or None, carecite extension) of one chat completion."""
    t0 = time.perf_counter()
    try:
        r = client.post("/v1/chat/completions",
                        json={"model": "carecite", "messages": [{"role": "user", "content": question}]})
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            return dt, f"HTTP {r.status_code}: {r.text[:200]}", None
        ext = r.json().get("carecite")
        if not isinstance(ext, dict) or "citations" not in ext:
            return dt, "response has no carecite answer", None
        return dt, None, ext
    except (httpx.HTTPError, ValueError) as e:
        return time.perf_counter() - t0, f"{type(e).__name__}: {e}", None


def run_loadtest(base_url: str, clients: int = 20, per_client: int = 10, token: str | None = None,
                 timeout_s: float = 300.0) -> dict:
    """Each of `clients` threads asks `per_client` questions in turn; all start together."""
    if clients < 1 or per_client < 1:
        raise ValueError(f"clients and per_client must be >= 1, got {clients} and {per_client}")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    results: list[tuple[float, str | None, dict | None]] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client_run(i: int) -> None:
        with httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s) as c:
            start.wait()
            for j in range(per_client):
                res = _one(c, QUESTIONS[(i * per_client + j) % len(QUESTIONS)])
                with lock:
                    results.append(res)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_run, range(clients)))
    wall = time.perf_counter() - t0
    lat = np.array([r[0] for r in results]) * 1000
    errors = [r[1] for r in results if r[1]]
    answers = [r[2] for r in results if r[2]]
    return {
        "base_url": base_url, "clients": clients, "per_client": per_client, "requests": len(results),
        "errors": len(errors), "error_examples": errors[:5], "wall_s": round(wall, 2),
        "throughput_rps": round(len(results) / wall, 3),
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1), "p95": round(float(np.percentile(lat, 95)), 1),
                       "max": round(float(lat.max()), 1), "mean": round(float(lat.mean()), 1)},
        "abstained": sum(bool(a.get("abstained")) for a in answers),
        "mean_citations": round(float(np.mean([sum(bool(c.get("cited")) for c in a["citations"])
                                               for a in answers])), 2) if answers else 0.0,
        "generator": answers[0].get("models", {}).get("generator") if answers else None,
    }


def _start_server(preset: str, port: int, data_dir: str | None = None) -> subprocess.Popen:
    """`assistant.api.serve` in a subprocess (its own GIL and index lock), ready when /healthz answers."""
    code = ("import sys; from carecite.settings import Settings; from assistant.api import serve; "
            f"serve(Settings.from_name({preset!r}), '127.0.0.1', {port})")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"CARECITE_PATHS__DATA_DIR": data_dir} if data_dir else {})}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("the API server did not answer /healthz within 300 s")


def format_report(res: dict) -> str:
    lat = res["latency_ms"]
    return (f"{res['clients']} clients x {res['per_client']} questions = {res['requests']} requests against "
            f"{res['base_url']} (generator: {res['generator']})\n"
            f"errors: {res['errors']}\nwall: {res['wall_s']} s, throughput: {res['throughput_rps']} req/s\n"
            f"latency ms: p50 {lat['p50']}, p95 {lat['p95']}, max {lat['max']}, mean {lat['mean']}\n"
            f"abstained: {res['abstained']}, mean cited passages: {res['mean_citations']}"
            + ("".join(f"\n  {e}" for e in res["error_examples"])))


def add_arguments(p: argparse.ArgumentParser, with_preset: bool = True) -> None:
    p.add_argument("--base-url", default="http://127.0.0.1:8000")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--per-client", type=int, default=10)
    p.add_argument("--token", default=os.environ.get("CARECITE_SERVER__API_TOKEN"))
    p.add_argument("--serve", action="store_true", help="start `serve` on a free port in a subprocess first")
    if with_preset:  # `carecite --preset NAME loadtest` passes its own
        p.add_argument("--preset", default="fast", help="settings preset for --serve (default fast: extractive)")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, preset: str = "fast", data_dir: str | None = None) -> int:
    proc, base = None, args.base_url
    if args.serve:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc, base = _start_server(preset, port, data_dir), f"http://127.0.0.1:{port}"
    try:
        res = run_loadtest(base, args.clients, args.per_client, args.token)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(res, indent=1) if args.json else format_report(res))
    return 0 if res["errors"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.loadtest", description=__doc__.split("\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    return run(args, args.preset)


if __name__ == "__main__":
    sys.exit(main())
