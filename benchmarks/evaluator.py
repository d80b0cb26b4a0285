"""One-pass evaluator vs the official-style pipeline, and the evaluator's peak memory vs N.

Same small model (AttGAN, `quick` widths, 64 px, random init: speed does not depend on
training), same N test images (smooth random images, random 19-class maps, random labels of the
13 attributes), same extractor files: a random-initialised Inception in torch-fidelity's layout
(BN calibrated), a random SwAV ResNet-50 in the official ``module.`` layout, a random classifier.

- ``ours``: ``faceedit_bench.metrics.evaluate`` (TARR, MRE, PSNR, SSIM, FID per attribute and
  pooled, IS, ssFID, FID on classifier features) in one pass, nothing written.
- ``official``: what the papers' code does (reference/implementations.md §2.4, §6 MatchGAN,
  reference/metrics.md §3): write the input, the reconstruction and every single-flip edit as
  PNG; TARR = the classifier over the PNG folders; PSNR/SSIM = scikit-image over PNG pairs; FID
  per attribute = torch-fidelity ``calculate_metrics(edit folder, real folder)`` (13 calls) and
  IS = one call over the whole fake pool; ssFID per attribute = the official
  self-supervised-gan-eval recipe (PIL Resize(224), SwAV features of both folders, scipy sqrtm),
  13 calls. MRE has no official code and is not timed there.

Every pipeline runs in a fresh subprocess with ``--threads`` threads (torch, OpenMP, BLAS; default
1), timed around the pipeline call only (imports and the random weight files excluded), as wall
seconds and process CPU seconds (getrusage self + children). ``--warm`` adds our evaluator with a
warm real-statistics cache (a second evaluation of the same data: 13N instead of 14N extractor
forwards); ``--reference-extractors`` adds ours with the unmodified torch-fidelity / torchvision
extractor forwards (``fast=False``), to show what the fast path buys. ``memory`` runs one
evaluation per N, each in a fresh process, and prints its peak RSS (``--extractors`` adds
Inception + SwAV, whose FID states are (13+1)·2048²·8 B = 448 MiB each, independent of N).

    .venv/bin/python benchmarks/evaluator.py speed --n 16 --warm
    .venv/bin/python benchmarks/evaluator.py speed --n 16 --no-official --warm --reference-extractors
    .venv/bin/python benchmarks/evaluator.py memory --n 8 64 256 --method identity
    .venv/bin/python benchmarks/evaluator.py memory --n 8 32 --method identity --extractors
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from faceedit_bench.protocol import DEFAULT_ATTRS

RES = 64


class BenchData(Dataset):
    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        low = torch.rand(n, 3, 6, 6, generator=g)
        self.image = torch.nn.functional.interpolate(low, size=(RES, RES), mode="bilinear") * 2 - 1
        self.parts = torch.randint(0, 19, (n, RES // 8, RES // 8), generator=g).repeat_interleave(8, 1).repeat_interleave(8, 2).to(torch.uint8)
        self.attrs = (torch.rand(n, 13, generator=g) < 0.4).float()

    def __len__(self):
        return len(self.image)

    def __getitem__(self, i):
        return {"image": self.image[i], "attrs": self.attrs[i], "parts": self.parts[i], "index": torch.tensor(i)}


class BenchDM:
    data, crop, resize_filter, res, attrs = "bench-random", "none", "none", RES, DEFAULT_ATTRS

    def __init__(self, n):
        self.ds, self.data_hash = BenchData(n), f"bench-{n}"

    def prepare_data(self):
        pass

    def setup(self, stage=None):
        pass

    def test_dataloader(self):
        return DataLoader(self.ds, batch_size=16, num_workers=0)


def small_model():
    from omegaconf import OmegaConf

    from faceedit_bench.config import compose_config
    from faceedit_bench.methods import build_method

    cfg = compose_config("attgan", RES, "synth", "quick", "cpu", [])
    torch.manual_seed(0)
    return build_method("attgan", **OmegaConf.to_container(cfg.method.model), res=RES).eval()


def make_weights(d: Path, extractors: bool = True):
    """Random extractor/classifier files in the official layouts (timing only); with
    ``extractors=False`` only the classifier (the Inception/SwAV paths are returned unwritten)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe
    import torchvision

    from faceedit_bench.metrics.classifier import AttributeClassifier, save_classifier

    torch.manual_seed(0)
    if not extractors:
        clf = AttributeClassifier(13, RES)
        return (*_weights(d)[:2], save_classifier(clf.eval(), d / "clf.pt", DEFAULT_ATTRS, 0.0,
                                                 torch.zeros(13), 0, "bench", "none"))
    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(((BenchData(4, 9).image + 1) * 127.5).to(torch.uint8))
    inc = d / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(net.eval().state_dict(), inc)
    r = torchvision.models.resnet50(weights=None)
    swav = d / "swav_800ep_pretrain.pth.tar"
    torch.save({"module." + k: v for k, v in r.state_dict().items()}, swav)
    clf = AttributeClassifier(13, RES)
    clf_path = save_classifier(clf.eval(), d / "clf.pt", DEFAULT_ATTRS, 0.0, torch.zeros(13), 0, "bench", "none")
    return inc, swav, clf_path


def cpu_s() -> float:
    """Process CPU seconds (user + system) of this process and its waited-for children."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_ours(method, dm, inc, swav, clf, cache_dir=None, fast=True):
    from faceedit_bench.metrics.evaluator import evaluate

    t, c = time.perf_counter(), cpu_s()
    rec = evaluate(method, dm, str(clf), inception_weights=str(inc), swav_weights=str(swav),
                   fast_extractors=fast, cache_dir=cache_dir, progress=False,
                   trainer_kwargs={"accelerator": "cpu"})
    return time.perf_counter() - t, cpu_s() - c, rec


def run_official(method, dm, inc, swav, clf_path, work: Path):
    from PIL import Image
    from scipy import linalg
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from torch_fidelity import calculate_metrics
    from torch_fidelity.datasets import ImagesPathDataset
    import torchvision.transforms as T

    from faceedit_bench.metrics.classifier import load_classifier
    from faceedit_bench.metrics.extractors import load_swav_resnet50
    from faceedit_bench.methods.contract import as_edit_result
    from faceedit_bench.protocol import single_flip_targets

    times = {}
    t0 = time.perf_counter()
    A = len(DEFAULT_ATTRS)
    dirs = {"real": work / "real", "recon": work / "recon", **{a: work / f"edit_{a}" for a in DEFAULT_ATTRS}}
    for p in dirs.values():
        p.mkdir(parents=True)

    def save(x, folder, names):
        x = as_edit_result(x).images
        u8 = ((x + 1) / 2 * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for img, n in zip(u8, names):
            Image.fromarray(img).save(folder / f"{n:06d}.png")

    labels = []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            x, src, idx = batch["image"], batch["attrs"], batch["index"].tolist()
            labels.append(src)
            save(x, dirs["real"], idx)
            save(method.edit(x, src, src), dirs["recon"], idx)
            for k, tgt in enumerate(single_flip_targets(src, DEFAULT_ATTRS)):
                save(method.edit(x, src, tgt), dirs[DEFAULT_ATTRS[k]], idx)
    labels = torch.cat(labels)
    times["generate+write PNG"] = time.perf_counter() - t0

    def load_folder(folder):
        return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted(folder.glob("*.png"))])

    t = time.perf_counter()
    clf = load_classifier(clf_path)
    hits = []
    for k, a in enumerate(DEFAULT_ATTRS):
        imgs = torch.from_numpy(load_folder(dirs[a])).permute(0, 3, 1, 2).float() / 127.5 - 1
        pred = torch.cat([clf.predict(b) for b in imgs.split(64)])
        hits.append(float((pred[:, k] == 1 - labels[:, k]).float().mean()))
    times["TARR (classifier on PNGs)"] = time.perf_counter() - t

    t = time.perf_counter()
    real, rec = load_folder(dirs["real"]), load_folder(dirs["recon"])
    psnr = np.mean([peak_signal_noise_ratio(a, b) for a, b in zip(real, rec)])
    ssim = np.mean([structural_similarity(a, b, channel_axis=-1) for a, b in zip(real, rec)])
    times["PSNR/SSIM (skimage on PNGs)"] = time.perf_counter() - t

    t = time.perf_counter()
    kw = dict(cuda=False, feature_extractor_weights_path=str(inc), cache=False, verbose=False,
              save_cpu_ram=True, batch_size=64)
    fids = [calculate_metrics(input1=str(dirs[a]), input2=str(dirs["real"]), fid=True, **kw)
            ["frechet_inception_distance"] for a in DEFAULT_ATTRS]
    times["FID per attribute (torch-fidelity, 13 calls)"] = time.perf_counter() - t
    t = time.perf_counter()
    files = sorted(str(f) for a in DEFAULT_ATTRS for f in dirs[a].glob("*.png"))
    isc = calculate_metrics(input1=ImagesPathDataset(files), isc=True, **kw)["inception_score_mean"]
    times["IS over the fake pool (torch-fidelity)"] = time.perf_counter() - t

    t = time.perf_counter()
    net = load_swav_resnet50(swav)
    tf = T.Compose([T.Resize(224), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])

    def swav_feats(folder):
        ims = [tf(Image.open(f).convert("RGB")) for f in sorted(folder.glob("*.png"))]
        with torch.no_grad():
            return torch.cat([net(torch.stack(ims[i:i + 50])) for i in range(0, len(ims), 50)]).double().numpy()

    def fd(f1, f2):
        m1, m2, s1, s2 = f1.mean(0), f2.mean(0), np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
        covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
        return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))

    ssfid = [fd(swav_feats(dirs["real"]), swav_feats(dirs[a])) for a in DEFAULT_ATTRS]
    times["ssFID per attribute (official recipe, 13 calls)"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    return total, times, {"tarr": float(np.mean(hits)), "psnr": float(psnr), "ssim": float(ssim),
                          "fid_mean": float(np.mean(fids)), "is": float(isc), "ssfid": float(np.mean(ssfid))}


def thread_env(threads: int) -> dict:
    return {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                        "OPENBLAS_NUM_THREADS")}}


def _weights(d: Path):
    return (d / "weights-inception-2015-12-05-6726825d.pth", d / "swav_800ep_pretrain.pth.tar",
            d / "clf.pt")


def speed_one(pipeline: str, n: int, d: Path, threads: int) -> dict:
    """One pipeline in this (fresh) process; returns its timings and values."""
    torch.set_num_threads(threads)
    inc, swav, clf = _weights(d)
    method, dm = small_model(), BenchDM(n)
    if pipeline == "official":
        c = cpu_s()
        t, parts, values = run_official(method, dm, inc, swav, clf, d / "official")
        return {"wall_s": t, "cpu_s": cpu_s() - c, "parts_wall_s": parts, "values": values}
    if pipeline == "ours-warm":  # first evaluation fills the real-statistics cache, second uses it
        cold_t, cold_c, _ = run_ours(method, dm, inc, swav, clf, cache_dir=d / "cache")
        t, c, rec = run_ours(method, dm, inc, swav, clf, cache_dir=d / "cache")
        out = {"wall_s": t, "cpu_s": c, "cold_wall_s": cold_t, "cold_cpu_s": cold_c}
    else:
        t, c, rec = run_ours(method, dm, inc, swav, clf, fast=pipeline != "ours-ref")
        out = {"wall_s": t, "cpu_s": c}
    m = rec["metrics"]
    out["values"] = {"psnr": m["psnr"], "ssim": m["ssim"], "tarr": m["tarr"], "is": m["is"],
                     "fid_mean": m["fid_attr_mean"], "ssfid": m["ssfid"]}
    out["extractors"] = [rec["protocol"]["fid_extractor"], rec["protocol"]["ssfid_extractor"]]
    return out


def speed(n: int, threads: int, warm: bool, reference: bool, official: bool):
    """Each pipeline in a fresh subprocess on the same weight files; prints one JSON summary."""
    pipelines = ["ours"] + ["ours-warm"] * warm + ["ours-ref"] * reference + ["official"] * official
    torch.set_num_threads(threads)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        make_weights(d)
        runs = {}
        for p in pipelines:
            proc = subprocess.run([sys.executable, __file__, "speed-one", "--pipeline", p, "--n", str(n),
                                   "--dir", str(d), "--threads", str(threads)], env=thread_env(threads),
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"benchmarks/evaluator.py speed-one --pipeline {p} failed:\n"
                                   f"{proc.stderr[-3000:]}")
            runs[p] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{p}: wall {runs[p]['wall_s']:.1f} s, cpu {runs[p]['cpu_s']:.1f} s", file=sys.stderr)
    summary = {"n": n, "threads": threads, "loadavg_start": load0, "loadavg_end": os.getloadavg(),
               "pipelines": {p: {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()
                                 if k != "values"} for p, r in runs.items()}}
    if "official" in runs:
        off = runs["official"]
        summary["ratios_official_over"] = {
            p: {"wall": round(off["wall_s"] / r["wall_s"], 2), "cpu": round(off["cpu_s"] / r["cpu_s"], 2)}
            for p, r in runs.items() if p != "official"}
    if "ours-ref" in runs:
        ref = runs["ours-ref"]
        summary["fast_path_gain"] = {"wall": round(ref["wall_s"] / runs["ours"]["wall_s"], 2),
                                     "cpu": round(ref["cpu_s"] / runs["ours"]["cpu_s"], 2)}
    summary["agreement"] = {k: {p: r["values"][k] for p, r in runs.items()} for k in runs["ours"]["values"]}
    print(json.dumps(summary, indent=1))


def memory_one(n: int, method_name: str = "attgan", threads: int = 1, extractors: bool = False):
    """Peak RSS of one evaluation: the method + classifier (TARR/MRE/PSNR/SSIM/FID-clf), and with
    ``extractors`` also FID/IS/ssFID on random Inception / SwAV files."""
    from faceedit_bench.methods.identity import IdentityMethod

    from faceedit_bench.metrics.evaluator import evaluate

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as d:
        inc, swav, clf = make_weights(Path(d), extractors)
        dm = BenchDM(n)
        kw = dict(inception_weights=str(inc), swav_weights=str(swav)) if extractors else {}
        method = small_model() if method_name == "attgan" else IdentityMethod(DEFAULT_ATTRS, RES)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t, c = time.perf_counter(), cpu_s()
        evaluate(method, dm, str(clf), cache_dir=None, progress=False,
                 trainer_kwargs={"accelerator": "cpu"}, **kw)
        dt, dc = time.perf_counter() - t, cpu_s() - c
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data_mb = dm.ds.image.numel() * 4 / 2**20
    print(json.dumps({"n": n, "method": method_name, "extractors": extractors,
                      "peak_rss_mb": round(peak / 1024, 1), "rss_before_eval_mb": round(base / 1024, 1),
                      "in_memory_test_images_mb": round(data_mb, 2), "wall_s": round(dt, 1),
                      "cpu_s": round(dc, 1), "loadavg": os.getloadavg()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "memory", "speed-one", "memory-one"])
    ap.add_argument("--n", type=int, nargs="+", default=[16])
    ap.add_argument("--threads", type=int, default=1, help="torch / OpenMP / BLAS threads per process")
    ap.add_argument("--method", default="attgan", choices=["attgan", "identity"], help="memory: the edited model")
    ap.add_argument("--extractors", action="store_true", help="memory: also FID/IS/ssFID (random Inception/SwAV)")
    ap.add_argument("--warm", action="store_true", help="speed: also ours with a warm real-statistics cache")
    ap.add_argument("--reference-extractors", action="store_true",
                    help="speed: also ours with the unmodified extractor forwards (fast=False)")
    ap.add_argument("--no-official", action="store_true", help="speed: skip the official-style pipeline")
    ap.add_argument("--pipeline", choices=["ours", "ours-warm", "ours-ref", "official"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.what == "speed":
        speed(a.n[0], a.threads, a.warm, a.reference_extractors, not a.no_official)
    elif a.what == "speed-one":
        print(json.dumps(speed_one(a.pipeline, a.n[0], a.dir, a.threads)))
    elif a.what == "memory-one":
        memory_one(a.n[0], a.method, a.threads, a.extractors)
    else:  # each N in a fresh process, so peak RSS is that run's own
        for n in a.n:
            cmd = [sys.executable, __file__, "memory-one", "--n", str(n), "--method", a.method,
                   "--threads", str(a.threads)] + ["--extractors"] * a.extractors
            subprocess.run(cmd, check=True, env=thread_env(a.threads))


if __name__ == "__main__":
    main()
