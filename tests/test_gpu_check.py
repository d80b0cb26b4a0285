"""The prepared GPU check runs its whole code path on the CPU (``--dry``), so it is known to work
before a session is lent a GPU."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run(tmp_path):
    import sys

    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry", "--methods",
                          "attgan,stargan", "--out", str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**__import__("os").environ, "PY": sys.executable,
                                                      "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry"] and [r["method"] for r in report["rows"]] == ["attgan", "stargan"]
    for row in report["rows"]:
        for setting in ("fp32", "bf16-mixed", "bf16+cl+compile"):
            assert row[setting].get("it_per_s", 0) > 0, (row["method"], setting, row[setting])
    assert report["rows"][0]["evaluator"]["images_per_s"] > 0
    assert "| attgan | 32 |" in (tmp_path / "gpu_check.md").read_text()
