"""The model zoo: export -> evaluate -> manifest; ``zoo:NAME`` wherever a checkpoint goes; a file
whose sha256 does not match its entry is refused."""
from __future__ import annotations

import json

import pytest
import torch

from faceedit_bench.cli import main
from faceedit_bench.zoo import ZooError, load_inference, read_manifest, resolve


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    args = ["--method", "stgan", "--res", "32", "--profile", "smoke", f"out_dir={root / 'runs'}",
            f"data_dir={root / 'data'}", "data.num_workers=0"]
    assert main(["fit", *args]) == 0
    return root, args, root / "runs" / "stgan_32_synth_smoke" / "checkpoints" / "last.ckpt"


def test_add_list_eval_and_refuse_a_changed_file(trained, monkeypatch, capsys):
    root, args, ckpt = trained
    monkeypatch.setenv("FACEEDIT_ZOO", str(root / "zoo"))
    assert main(["zoo", "add", "--ckpt", str(ckpt), "--name", "stgan_tiny", "--data-dir", str(root / "data"),
                 "--results", str(root / "results"), "--out", str(root / "lb"),
                 "--command", "faceedit-bench fit --method stgan --res 32 --profile smoke"]) == 0
    entry = read_manifest(root / "zoo")["stgan_tiny"]
    assert entry["method"] == "stgan" and entry["resolution"] == 32 and entry["iterations"] == 2
    assert entry["record"]["run"]["zoo"] == "stgan_tiny" and len(entry["sha256"]) == 64
    capsys.readouterr()
    assert main(["zoo"]) == 0
    assert capsys.readouterr().out.startswith("stgan_tiny")

    # the inference file edits like the training checkpoint (fp16 weights)
    from faceedit_bench.train import load_method

    full, small = load_method(ckpt), load_inference(resolve("zoo:stgan_tiny", root / "zoo"))
    x, a = torch.rand(2, 3, 32, 32) * 2 - 1, torch.zeros(2, 13)
    torch.testing.assert_close(small.edit(x, a, 1 - a).images, full.edit(x, a, 1 - a).images,
                               atol=2e-2, rtol=0)
    assert (root / "zoo" / "stgan_tiny.pt").stat().st_size < ckpt.stat().st_size / 2

    # eval --ckpt zoo:NAME reproduces the recorded metrics under the same protocol id
    from faceedit_bench.leaderboard.load import protocol_id

    ev = ["eval", "--ckpt", "zoo:stgan_tiny", "--profile", "smoke", "--no-progress", f"data_dir={root / 'data'}",
          "--data-dir", str(root / "data"), "--results", str(root / "r2"), "--out", str(root / "lb2"),
          "data.num_workers=0"]
    assert main(ev) == 0
    rec = json.loads((root / "r2" / "results.jsonl").read_text().splitlines()[-1])
    assert protocol_id(rec) == protocol_id(entry["record"])
    for key in ("tarr", "psnr", "mre", "cf_l1_in"):
        assert rec["metrics"][key] == pytest.approx(entry["record"]["metrics"][key], rel=1e-6, abs=1e-9)

    # a changed file is refused, naming the entry
    path = root / "zoo" / "stgan_tiny.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="stgan_tiny.*sha256.*refusing"):
        resolve("zoo:stgan_tiny", root / "zoo")
    assert main(ev) != 0
    assert "refusing" in capsys.readouterr().err


def test_unknown_entry_lists_the_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEEDIT_ZOO", str(tmp_path))
    with pytest.raises(ZooError, match="no zoo entry 'nope'.*entries: none"):
        resolve("zoo:nope")


def test_bench_verdict_beside_identity_and_the_zoo_model(trained, tmp_path, monkeypatch, capsys):
    """``bench`` on SynthFaces also evaluates identity and ``zoo:<method>_synth_<res>`` on the
    same protocol, prints the per-attribute verdict with each model's training, marks the zoo
    record, and a rerun evaluates nothing again."""
    root, args, ckpt = trained
    monkeypatch.setenv("FACEEDIT_ZOO", str(tmp_path / "zoo"))
    common = ["--data-dir", str(root / "data"), "--results", str(tmp_path / "res"), "--out", str(tmp_path / "lb")]
    for name in ("stgan_synth_32", "another_ref"):
        assert main(["zoo", "add", "--ckpt", str(ckpt), "--name", name, *common,
                     "--command", "faceedit-bench fit --method stgan --res 32 --profile smoke"]) == 0
    capsys.readouterr()
    bench = ["bench", "--method", "stgan", "--res", "32", "--profile", "smoke", "--no-progress", *common,
             f"out_dir={root / 'runs'}", f"data_dir={root / 'data'}", "data.num_workers=0",
             "+profile.compare_zoo=[another_ref,not_in_the_zoo]"]
    assert main(bench) == 0
    out = capsys.readouterr().out
    assert "does it edit?" in out and "identity (no edit)" in out
    assert "zoo:stgan_synth_32: edits toward the truth on" in out
    assert "zoo:another_ref: edits toward the truth on" in out and "not_in_the_zoo" not in out
    assert "Eyeglasses: edited toward the truth by" in out  # one line per focus attribute
    assert "trained 2 iterations" in out and "by `faceedit-bench fit --method stgan" in out
    recs = [json.loads(line) for line in (tmp_path / "res" / "results.jsonl").read_text().splitlines()]
    # one record per distinct weights file: the same file under a second name is not re-evaluated
    assert sorted(r["method"] for r in recs) == ["identity", "stgan", "stgan"]
    zoo_rec = next(r for r in recs if (r.get("run") or {}).get("zoo"))
    assert zoo_rec["run"]["zoo"] == "stgan_synth_32" and zoo_rec["profile"] == "smoke"
    # identity's cf_l1_in is the baseline itself: the verdict compares with exactly it
    from faceedit_bench.quickstart import edits_better

    ident = next(r for r in recs if r["method"] == "identity")
    assert edits_better(ident, ident)[0] == []
    assert main(bench) == 0  # nothing evaluated again
    assert len((tmp_path / "res" / "results.jsonl").read_text().splitlines()) == 3
    assert "does it edit?" in capsys.readouterr().out


def test_zoo_references_keep_entries_on_the_runs_protocol():
    """The verdict's zoo models: the method's own entry first, then the profile's
    ``compare_zoo``; an entry of another resolution, dataset or attribute list (another
    protocol) or absent from the zoo is left out."""
    from omegaconf import OmegaConf

    from faceedit_bench.quickstart import zoo_references

    def entry(res=64, dataset="synth", attrs=None):
        cfg = {"method": {"name": "stgan", "model": {}}, **({"attrs": attrs} if attrs else {})}
        return {"resolution": res, "dataset": dataset, "config": cfg}

    manifest = {"stgan_synth_64": entry(), "sagan_eg": entry(), "other_res": entry(res=32),
                "other_data": entry(dataset="celeba"), "four_attrs": entry(attrs=["Eyeglasses", "Smiling"])}
    cfg = OmegaConf.create({"method": {"name": "stgan", "model": {}}, "data": {"name": "synth"}, "res": 64,
                            "profile": {"compare_zoo": ["sagan_eg", "other_res", "other_data",
                                                        "four_attrs", "absent", "stgan_synth_64"]}})
    assert zoo_references(cfg, manifest) == ["stgan_synth_64", "sagan_eg"]
    cfg.profile.compare_zoo = None
    assert zoo_references(cfg, {}) == []


def test_the_zoo_ships_its_classifier_for_a_fresh_data_folder(trained, tmp_path, monkeypatch, capsys):
    """``zoo add`` copies the attribute classifier it evaluated with into the zoo; ``eval --ckpt
    zoo:NAME`` on a data folder without one (a fresh clone) takes it from there, so the record
    has the entry's protocol id; a changed copy is refused."""
    from faceedit_bench.leaderboard.load import protocol_id

    root, args, ckpt = trained
    zoo = tmp_path / "zoo"
    monkeypatch.setenv("FACEEDIT_ZOO", str(zoo))
    assert main(["zoo", "add", "--ckpt", str(ckpt), "--name", "stgan_c", "--data-dir", str(root / "data"),
                 "--results", str(tmp_path / "r0"), "--out", str(tmp_path / "lb0"),
                 "--command", "faceedit-bench fit --method stgan --res 32 --profile smoke"]) == 0
    entry = read_manifest(zoo)["stgan_c"]
    shipped = zoo / entry["classifier"]["file"]
    assert shipped.is_file() and shipped.parent.name == "classifiers"
    fresh = tmp_path / "fresh_data"
    ev = ["eval", "--ckpt", "zoo:stgan_c", "--profile", "smoke", "--no-progress", f"data_dir={fresh}",
          "--data-dir", str(fresh), "--results", str(tmp_path / "r1"), "--out", str(tmp_path / "lb1"),
          "data.num_workers=0"]
    capsys.readouterr()
    assert main(ev) == 0
    assert "attribute classifier from the zoo" in capsys.readouterr().out
    assert (fresh / "classifiers" / shipped.name).read_bytes() == shipped.read_bytes()
    rec = json.loads((tmp_path / "r1" / "results.jsonl").read_text().splitlines()[-1])
    assert protocol_id(rec) == protocol_id(entry["record"])
    data = bytearray(shipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shipped.write_bytes(bytes(data))
    (fresh / "classifiers" / shipped.name).unlink()
    ev[ev.index("--results") + 1] = str(tmp_path / "r2")
    assert main(ev) != 0
    assert "refusing" in capsys.readouterr().err


def test_rescore_replaces_a_stale_record_and_remove_drops_the_entry(trained, tmp_path, monkeypatch):
    """``zoo rescore`` re-evaluates an entry whose record is under another protocol (here a
    stale data hash and a changed metric) and replaces it in the manifest and zoo.jsonl;
    ``zoo remove`` drops the weights, the entry, its records and the unused classifier."""
    from faceedit_bench.zoo import write_manifest

    root, args, ckpt = trained
    zoo = tmp_path / "zoo"
    monkeypatch.setenv("FACEEDIT_ZOO", str(zoo))
    common = ["--data-dir", str(root / "data"), "--results", str(tmp_path / "r")]
    assert main(["zoo", "add", "--ckpt", str(ckpt), "--name", "s", "--out", str(tmp_path / "lb"), *common]) == 0
    entries = read_manifest(zoo)
    fresh = json.loads(json.dumps(entries["s"]["record"]))
    entries["s"]["record"]["protocol"]["data_hash"] = "0" * 16
    entries["s"]["record"]["metrics"]["tarr"] = -1.0
    write_manifest(entries, zoo)
    assert main(["zoo", "rescore", "s", "--out", str(tmp_path / "lb"), *common]) == 0
    rec = read_manifest(zoo)["s"]["record"]
    assert rec["protocol"] == fresh["protocol"] and rec["metrics"]["tarr"] == fresh["metrics"]["tarr"]
    assert rec["run"] == fresh["run"]
    lines = (tmp_path / "r" / "zoo.jsonl").read_text().splitlines()
    assert [json.loads(x)["metrics"]["tarr"] for x in lines] == [fresh["metrics"]["tarr"]]
    assert main(["zoo", "rescore", "nope", *common]) == 2
    assert main(["zoo", "add", "--ckpt", str(ckpt), "--name", "s", "--out", str(tmp_path / "lb"), "--force",
                 "--cpu-hours", "0.5", *common]) == 0   # replaces the entry and its record
    assert len((tmp_path / "r" / "zoo.jsonl").read_text().splitlines()) == 1
    classifier = zoo / read_manifest(zoo)["s"]["classifier"]["file"]
    assert main(["zoo", "remove", "s", "--results", str(tmp_path / "r")]) == 0
    assert read_manifest(zoo) == {} and not (zoo / "s.pt").exists() and not classifier.exists()
    assert (tmp_path / "r" / "zoo.jsonl").read_text() == ""


def _add_entries(root: str, worker: int, n: int) -> None:
    from pathlib import Path

    from faceedit_bench.zoo import update_manifest

    for i in range(n):
        update_manifest(f"m{worker}_{i}", {"file": f"m{worker}_{i}.pt", "sha256": "0" * 64}, Path(root))


def test_concurrent_adds_lose_no_entry(tmp_path):
    """4 processes x 5 read-change-write updates of one manifest -> all 20 entries (the lock);
    a second add of an existing name is refused unless forced."""
    import multiprocessing as mp

    from faceedit_bench.zoo import update_manifest

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_add_entries, args=(str(tmp_path), w, 5)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert sorted(read_manifest(tmp_path)) == sorted(f"m{w}_{i}" for w in range(4) for i in range(5))
    with pytest.raises(ZooError, match="'m0_0' exists"):
        update_manifest("m0_0", {"file": "x.pt"}, tmp_path)
    update_manifest("m0_0", {"file": "x.pt"}, tmp_path, force=True)
    assert read_manifest(tmp_path)["m0_0"] == {"file": "x.pt"}
    assert not list(tmp_path.glob("*.tmp"))


def test_committed_zoo_entries_are_complete_and_load():
    """Every entry of the repository's zoo: the manifest fields issue 14 lists, a file whose
    sha256 matches, inference weights that rebuild the entry's method and variant."""
    from faceedit_bench.zoo import zoo_dir

    entries = read_manifest(zoo_dir())
    assert entries, "the repository's zoo is empty"
    need = {"file", "sha256", "method", "variant", "resolution", "dataset", "profile", "iterations",
            "cpu_hours", "command", "config", "renderer", "data_hash", "classifier", "record"}
    for name, e in entries.items():
        assert need <= set(e), f"{name}: manifest lacks {sorted(need - set(e))}"
        assert e["command"] and e["iterations"] > 0, name
        method = load_inference(resolve(f"zoo:{name}"))
        assert method.method_name == e["method"] and method.variant == e["variant"], name
        assert e["record"]["run"]["zoo"] == name
