"""The bench path end to end at tiny size (32 px, 2 iterations, 3 attributes) for every method.

Data: a CelebA-layout folder of flat-colour images (tests/_celeba_fixtures), read by the real
readers, store, data module, classifier training (``--train-classifier``), trainer, evaluator,
result records and leaderboards; the SynthFaces Quickstart path runs when its exporter exists.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from faceedit_bench.cli import main
from faceedit_bench.methods import available
from faceedit_bench.leaderboard.render_tables import unified_name

ATTRS = "+attrs=[Bald,Eyeglasses,Male]"
TINY = ["profile.max_iters=2", "profile.batch_size=4", "profile.ckpt_every=1", "profile.sample_every=0",
        "profile.progress_bar=false", "profile.log_every=1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from _celeba_fixtures import write_celeba

    base = tmp_path_factory.mktemp("bench")
    write_celeba(base / "celeba", n=24, hw=(40, 40), partition=[0] * 14 + [1] * 2 + [2] * 8)
    return base


def _args(world: Path, method: str, *extra: str) -> list[str]:
    return ["bench", "--method", method, "--res", "32", "--data", "celeba", "--profile", "quick", "--no-progress",
            "--data-dir", str(world / "data"), "--results", str(world / "results"),
            "--out", str(world / "lb"), "--train-classifier", "--classifier-epochs", "1", *extra,
            f"data.root={world / 'celeba'}", "data.split=partition", "data.crop=none", "data.masks=gt",
            "data.num_workers=0", f"out_dir={world / 'runs'}", ATTRS, *TINY]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _bench_methods() -> list[str]:
    """Label-conditioned methods that run at 32 px (this file's CelebA fixture size) without a
    face parser file (on real data the suite makes none: tests/test_contract.py covers SynthFaces)."""
    from faceedit_bench.build import build_method
    from faceedit_bench.config import compose_config, method_resolutions
    from faceedit_bench.methods import get_method_class

    return [m for m in available() if 32 in method_resolutions(m)
            and "attribute_flip" in get_method_class(m).tracks
            and "parser" not in build_method(compose_config(m, 32)).frozen_helpers()]


@pytest.mark.parametrize("method", _bench_methods())
def test_bench_every_method(world, method, capsys):
    assert main(_args(world, method)) == 0
    out = capsys.readouterr().out
    recs = [r for r in _records(world / "results" / "results.jsonl") if r["method"] == method]
    assert recs, f"no record for {method}"
    rec = recs[-1]
    assert rec["resolution"] == 32 and rec["dataset"] == "celeba" and rec["profile"] == "quick"
    assert rec["protocol"]["attrs"] == ["Bald", "Eyeglasses", "Male"]
    assert rec["n_images"] == 8
    tarr, acc = rec["per_attribute"]["tarr"], rec["per_attribute"]["clf_acc_test"]
    assert rec["metrics"]["tarr"] == pytest.approx(sum(tarr.values()) / len(tarr))
    if method == "identity":  # an unchanged image is a hit exactly where the classifier errs
        assert tarr == pytest.approx({a: 1 - acc[a] for a in tarr})
    table = (world / "lb" / f"{unified_name('attribute_flip', 'celeba', 32, rec['protocol']['attrs'])}.md").read_text()
    assert any(line.startswith(f"| {method} | quick |") for line in table.splitlines())
    assert (world / "lb" / "grids" / f"{method}_celeba_32_quick.png").is_file()
    assert "result record" in out and "tarr" in out  # the printed summary
    if rec["metrics"].get("fid") is None and rec["protocol"].get("fid_status"):  # says why, once
        assert out.count("fid, is not computed: ") == 1 and "— [1]" in out
    from faceedit_bench.methods import get_method_class
    from faceedit_bench.methods.adversarial import AdversarialEditor

    if issubclass(get_method_class(method), AdversarialEditor):  # trainable: a checkpoint was written
        assert (world / "runs" / f"{method}_32_celeba_quick" / "checkpoints" / "last.ckpt").is_file()


def test_eval_checkpoint_only(world):
    gan = next(m for m in available() if m != "identity")
    ckpt = world / "runs" / f"{gan}_32_celeba_quick" / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        assert main(_args(world, gan)) == 0
    before = _records(world / "results" / "results.jsonl")
    args = _args(world, gan, "--ckpt", str(ckpt))
    args[0] = "eval"
    assert main(args) == 0  # the bench already evaluated this checkpoint under this protocol
    assert _records(world / "results" / "results.jsonl") == before
    assert main([*args, "--force"]) == 0  # re-evaluates and replaces, never duplicates
    after = _records(world / "results" / "results.jsonl")
    assert len(after) == len(before) and after[-1]["method"] == gan
    key = after[-1]["run"]["eval_key"]
    assert sum(r["run"]["eval_key"] == key for r in after) == 1


def test_celeba_missing_says_where_and_layout(tmp_path, capsys):
    rc = main(["bench", "--method", "identity", "--data", "celeba", "--data-dir", str(tmp_path / "d"),
               "--results", str(tmp_path / "r"), f"data.root={tmp_path / 'nowhere'}"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "img_align_celeba" in err and "list_attr_celeba.txt" in err and str(tmp_path / "nowhere") in err
    assert not (tmp_path / "r").exists()  # nothing recorded


def test_missing_classifier_on_real_data_says_what_to_provide(world, capsys):
    args = [a for a in _args(world, "identity") if a not in ("--train-classifier",)]
    args += ["--classifier", str(world / "nope.pt")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(world / "nope.pt") in err and "--train-classifier" in err


def test_synth_quickstart_path_tiny(tmp_path, capsys):
    args = ["bench", "--method", "identity", "--res", "32", "--n", "40", "--no-progress", "--profile", "quick",
            "--classifier-epochs", "1", "--data-dir", str(tmp_path / "data"),
            "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb"),
            f"out_dir={tmp_path / 'runs'}", "data.num_workers=0", ATTRS, *TINY]
    assert main(args) == 0  # exports SynthFaces, builds the store, trains the classifier
    clf = list((tmp_path / "data" / "classifiers").glob("*.pt"))
    assert len(clf) == 1
    stamp = clf[0].stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0  # second run reuses data, classifier and the evaluation itself
    assert clf[0].stat().st_mtime_ns == stamp
    assert "already evaluated" in capsys.readouterr().out
    recs = _records(tmp_path / "results" / "results.jsonl")
    assert [r["dataset"] for r in recs] == ["synth"]


def test_quickstart_defaults():
    """``make bench`` with no arguments: the Quickstart method and profile, a CPU budget on training."""
    from faceedit_bench.bench import QUICKSTART_METHOD, QUICKSTART_PROFILE
    from faceedit_bench.cli import build_parser
    from faceedit_bench.config import compose_config

    args = build_parser().parse_args(["bench"])
    assert (args.method, args.profile, args.data) == (QUICKSTART_METHOD, QUICKSTART_PROFILE, "synth")
    cfg = compose_config(args.method, None, "synth", args.profile)
    assert cfg.res == 64 and cfg.profile.max_cpu_minutes > 0


def test_data_may_be_a_celeba_layout_folder(world):
    """``make bench DATA=/path/to/celeba``: the folder's layout names the dataset."""
    args = _args(world, "identity")
    args[args.index("--data") + 1] = str(world / "celeba")
    args = [a for a in args if not a.startswith("data.root=")]
    assert main([*args, "--results", str(world / "results_folder")]) == 0
    rec = _records(world / "results_folder" / "results.jsonl")[-1]
    assert rec["dataset"] == "celeba" and rec["n_images"] == 8


def test_record_carries_the_wandb_run_id(world, tmp_path, monkeypatch):
    """With W&B on (offline), the record names the W&B run it was logged to: the id stored in the
    run folder, which a resume of that folder continues."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    args = _args(world, "identity", "--wandb-mode", "offline")
    args[args.index("--results") + 1] = str(tmp_path / "results")
    assert main(args) == 0
    rec = _records(tmp_path / "results" / "results.jsonl")[-1]
    stored = (world / "runs" / "identity_32_celeba_quick" / "wandb_run_id").read_text().strip()
    assert rec["run"]["wandb_id"] == stored and len(stored) == 8
