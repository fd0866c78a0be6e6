"""Fake tracing at full scale: time and peak RSS of ``--device meta`` on the Llama-2 7B/70B shapes.

Each model is traced in a fresh process (train, batch 1, 2048 tokens, AdamW), so the RSS figure is
the trace's own. Targets: 7B under 60 s and 2 GB RSS; 70B under 5 minutes. One trace is timed
(``scaling=False``); a profile saved as JSON for what-ifs adds a second trace at twice the batch.

    python bench/fake_scale.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import json, resource, sys, time
import memadvise
start = time.perf_counter()
prof = memadvise.profile_file(sys.argv[1], batch_size=1, device="meta", scaling=False)
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "rss": rss, "peak": prof.peak_bytes, "phase": prof.peak_phase,
                  "params": prof.param_bytes}))
"""


def measure(model: str) -> dict[str, float]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / model)], capture_output=True, text=True, check=True
    ).stdout
    row = json.loads(out.strip().splitlines()[-1])
    row["wall"] = time.perf_counter() - started
    return row


def main() -> None:
    print(f"{'model':<28} {'trace s':>8} {'process s':>10} {'max RSS':>10} {'peak':>12}  phase")
    for model, limit in (("sample_models/llama2_7b.py", 60), ("sample_models/llama2_70b.py", 300)):
        r = measure(model)
        print(
            f"{model:<28} {r['seconds']:>8.1f} {r['wall']:>10.1f} {r['rss'] / 2**30:>8.2f} GiB "
            f"{r['peak'] / 2**30:>8.1f} GiB  {r['phase']}  (target under {limit} s)"
        )


if __name__ == "__main__":
    main()
