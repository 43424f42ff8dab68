"""Time the configured generator on the configured index: a cold first answer, then warm ones.

    python scripts/generator_latency.py
"""
import time
from assistant.pipeline import Assistant
from carecite.settings import Settings
qs = ["How is type 2 diabetes diagnosed?", "What are the symptoms of Parkinson's disease?",
      "How is high blood pressure treated?"]
with Assistant(Settings()) as a:
    for q in qs:
        t0 = time.perf_counter(); first = None
        for ev in a.stream(q):
            if ev["type"] == "token" and first is None:
                first = time.perf_counter() - t0
            if ev["type"] == "answer":
                ans = ev["answer"]
        tot = time.perf_counter() - t0
        cited = [s for s in ans.sources if getattr(s, "cited", True)]
        sup = sum(x.supported for x in ans.sentences)
        print(f"{q!r}: TTFT {first:.1f} s, total {tot:.1f} s, abstained={ans.abstained}, "
              f"sentences supported {sup}/{len(ans.sentences)}, timings={ {k: round(v, 2) for k, v in ans.timings.items()} }")
        print("   ", ans.answer[:300].replace("\n", " "))
