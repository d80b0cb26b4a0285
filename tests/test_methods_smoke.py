"""Every registered method x every resolution its config declares: the smoke profile trains it
through ``faceedit-bench fit`` and evaluates it through ``faceedit-bench eval`` on SynthFaces,
writing a valid record (DESIGN §10). Method and resolution lists come from the registry and the
configs, never from this file.
"""
from __future__ import annotations

import json

import lightning.pytorch as pl
import pytest
import torch

from faceedit_bench.cli import main
from faceedit_bench.config import compose_config, method_resolutions
from faceedit_bench.methods import available, get_method_class
from faceedit_bench.methods.adversarial import AdversarialEditor
from faceedit_bench.results import validate_record
from faceedit_bench.train import load_method


def _cases():
    return [(name, res) for name in available() for res in method_resolutions(name)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke")


def _common(world, method, res):
    return ["--method", method, "--res", str(res), "--profile", "smoke", f"out_dir={world / 'runs'}",
            f"data_dir={world / 'data'}", "data.num_workers=0"]


def test_every_method_declares_resolutions_and_the_smoke_profile_shrinks_it():
    assert _cases()
    for name in available():
        assert method_resolutions(name), name
        res = method_resolutions(name)[0]
        smoke = compose_config(name, res, profile="smoke")
        assert smoke.profile.max_iters <= 5 and smoke.res == res


@pytest.mark.parametrize("method,res", _cases())
def test_smoke_fit_then_eval(world, method, res, capsys):
    trainable = issubclass(get_method_class(method), AdversarialEditor)
    if trainable:
        assert main(["fit", *_common(world, method, res)]) == 0
        ckpt = world / "runs" / f"{method}_{res}_synth_smoke" / "checkpoints" / "last.ckpt"
        out = capsys.readouterr().out
        assert ckpt.is_file() and "reached max_iters=2 at iteration 2" in out
        trained = load_method(ckpt)
        pl.seed_everything(0, verbose=False)  # fit seeds the same way before building the method
        untrained = get_method_class(method)(**{**trained.hparams, "compile": False})
        moved = [n for n, p in trained.named_parameters()
                 if not torch.equal(p, dict(untrained.named_parameters())[n])]
        assert moved, "training changed no weight"  # same seed, same init: only training moves them
    results, boards = world / f"results_{method}_{res}", world / f"lb_{method}_{res}"
    args = ["eval", *_common(world, method, res), "--no-progress", "--results", str(results),
            "--out", str(boards), "--data-dir", str(world / "data")]
    assert main(args) == 0
    rec = validate_record(json.loads((results / "results.jsonl").read_text().splitlines()[-1]))
    assert (rec["method"], rec["resolution"], rec["profile"]) == (method, res, "smoke")
    assert rec["n_images"] > 0 and rec["track"] in get_method_class(method).tracks
    if rec["track"] == "attribute_flip":
        per = rec["per_attribute"]["tarr"]
        assert rec["metrics"]["tarr"] == pytest.approx(sum(per.values()) / len(per))
        assert 0.0 <= rec["metrics"]["tarr"] <= 1.0
