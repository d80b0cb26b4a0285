"""The metric-validity report: Spearman ρ of each proxy against the true counterfactual error."""
from __future__ import annotations

import pytest

from faceedit_bench.leaderboard.metric_validity import checkpoints, correlations, render, spearman
from faceedit_bench.results import append_record, make_record

ATTRS = ["Bald", "Bangs"]


def _rec(i: int, cf: float, tarr: float, mre: float) -> dict:
    proto = {"attrs": ATTRS, "crop": "none", "resize_filter": "bicubic", "test_intensity": 1.0, "seed": 0,
             "commit": "x", "precision": "32", "devices": 1, "data_hash": "h"}
    per = {"cf_l1": {"Bald": cf, "Bangs": cf * 2}, "tarr": {"Bald": tarr, "Bangs": 1 - tarr}}
    return make_record("stgan", 64, "synth", "test", 10, {"cf_l1": cf, "tarr": tarr, "mre": mre},
                       proto, per, track="attribute_flip", run={"checkpoint": f"it{i}"})


def test_spearman_matches_scipy_and_ties():
    from scipy.stats import spearmanr

    xs, ys = [1, 2, 2, 5, 3], [0.1, 0.5, 0.4, 0.9, 0.2]
    assert spearman(xs, ys) == pytest.approx(spearmanr(xs, ys).statistic)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1, 2], [1, 2]) is None


def test_orientation_and_report(tmp_path):
    # the error falls over training; TARR rises with it (a good proxy), MRE rises too (lower is
    # better, so it ranks the checkpoints backwards)
    for i, (cf, tarr, mre) in enumerate([(0.3, 0.1, 0.01), (0.2, 0.4, 0.02), (0.1, 0.8, 0.03), (0.05, 0.9, 0.04)]):
        append_record(tmp_path / "validity" / "ttq.jsonl", _rec(i, cf, tarr, mre))
    recs = checkpoints(tmp_path)
    assert len(recs) == 4
    assert correlations(recs, "tarr")["rho"] == pytest.approx(1.0)
    assert correlations(recs, "mre")["rho"] == pytest.approx(-1.0)
    per = correlations(recs, "tarr")["per_attribute"]
    assert per["Bald"][1] == pytest.approx(1.0) and per["Bangs"][1] == pytest.approx(-1.0)
    md = render(tmp_path)
    assert "Checkpoints: **4**" in md and "| tarr | 4 | 1 | 1 | -1 |" in md  # n, overall, median, worst


def test_time_to_quality_rows_count_as_checkpoints(tmp_path):
    """Training-curve rows of benchmarks/time_to_quality.jsonl are checkpoints of the report; the
    identity baseline and diagnostic re-evaluations are not; a damaged line names file and line."""
    import json

    rows = [{"method": "attgan", "train_cpu_s": 60.0 * k, "checkpoint": f"c{k}", "cf_l1": 0.3 - 0.05 * k,
             "tarr": 0.1 * k, "mre": 0.2 - 0.01 * k, "tarr_attr": {"Bald": 0.1 * k},
             "cf_l1_attr": {"Bald": 0.3 - 0.05 * k}} for k in range(1, 5)]
    rows += [{"method": "identity", "train_cpu_s": None, "cf_l1": 0.2, "tarr": 0.0},
             {**rows[0], "recal_bn": 100}, {**rows[1], "intensity": 2.0}]
    curves = tmp_path / "ttq.jsonl"
    curves.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs = checkpoints(tmp_path / "none", curves)
    assert [r["run"]["checkpoint"] for r in recs] == ["c1", "c2", "c3", "c4"]
    c = correlations(recs, "tarr")
    assert c["n"] == 4 and c["rho"] == pytest.approx(1.0) and c["per_attribute"]["Bald"][1] == pytest.approx(1.0)
    assert correlations(recs, "mre")["rho"] == pytest.approx(1.0)   # lower MRE, lower error: agrees
    assert "Checkpoints: **4** (attgan 4)" in render(tmp_path / "none", curves)
    curves.write_text(curves.read_text() + "{oops\n")
    with pytest.raises(ValueError, match=rf"^{curves}:8: not a JSON line"):
        checkpoints(tmp_path / "none", curves)
