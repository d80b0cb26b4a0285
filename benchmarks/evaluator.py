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

    .venv/bin/python benchmarks/evaluator.py speed --n 16
    .venv/bin/python benchmarks/evaluator.py memory --n 8 64 256 --method identity
"""
from __future__ import annotations

import argparse
import json
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


def make_weights(d: Path):
    """Random extractor/classifier files in the official layouts (timing only)."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe
    import torchvision

    from faceedit_bench.metrics.classifier import AttributeClassifier, save_classifier

    torch.manual_seed(0)
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
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_ours(method, dm, inc, swav, clf):
    from faceedit_bench.metrics.evaluator import evaluate

    t = time.perf_counter()
    rec = evaluate(method, dm, str(clf), inception_weights=str(inc), swav_weights=str(swav),
                   cache_dir=None, progress=False, trainer_kwargs={"accelerator": "cpu"})
    return time.perf_counter() - t, rec


def run_official(method, dm, inc, swav, clf_path, work: Path):
    from PIL import Image
    from scipy import linalg
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    from torch_fidelity import calculate_metrics
    from torch_fidelity.datasets import ImagesPathDataset
    import torchvision.transforms as T

    from faceedit_bench.metrics.classifier import load_classifier
    from faceedit_bench.metrics.extractors import load_swav_resnet50
    from faceedit_bench.protocol import single_flip_targets

    times = {}
    t0 = time.perf_counter()
    A = len(DEFAULT_ATTRS)
    dirs = {"real": work / "real", "recon": work / "recon", **{a: work / f"edit_{a}" for a in DEFAULT_ATTRS}}
    for p in dirs.values():
        p.mkdir(parents=True)

    def save(x, folder, names):
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


def speed(n: int):
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        inc, swav, clf = make_weights(d)
        method, dm = small_model(), BenchDM(n)
        c0 = cpu_s()
        t_ours, rec = run_ours(method, dm, inc, swav, clf)
        c1 = cpu_s()
        t_off, parts, off = run_official(method, dm, inc, swav, clf, d / "official")
        c2 = cpu_s()
    m = rec["metrics"]
    print(json.dumps({"n": n, "ours_s": round(t_ours, 1), "official_s": round(t_off, 1),
                      "speedup": round(t_off / t_ours, 2),
                      "ours_cpu_s": round(c1 - c0, 1), "official_cpu_s": round(c2 - c1, 1),
                      "cpu_time_ratio": round((c2 - c1) / (c1 - c0), 2),
                      "official_parts_s": {k: round(v, 1) for k, v in parts.items()},
                      "agreement": {"psnr": [m["psnr"], off["psnr"]], "ssim": [m["ssim"], off["ssim"]],
                                    "tarr": [m["tarr"], off["tarr"]], "is": [m["is"], off["is"]],
                                    "fid_attr_mean": [m["fid_attr_mean"], off["fid_mean"]],
                                    "ssfid": [m["ssfid"], off["ssfid"]]}}, indent=1))


def memory_one(n: int, method_name: str = "attgan"):
    """Peak RSS of one evaluation (the method + classifier: TARR/MRE/PSNR/SSIM/FID-clf)."""
    from faceedit_bench.methods.identity import IdentityMethod

    from faceedit_bench.metrics.classifier import AttributeClassifier, save_classifier
    from faceedit_bench.metrics.evaluator import evaluate

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        clf = save_classifier(AttributeClassifier(13, RES), Path(d) / "c.pt", DEFAULT_ATTRS, 0.0,
                              torch.zeros(13), 0, "bench", "none")
        dm = BenchDM(n)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        method = small_model() if method_name == "attgan" else IdentityMethod(DEFAULT_ATTRS, RES)
        evaluate(method, dm, str(clf), cache_dir=None, progress=False,
                 trainer_kwargs={"accelerator": "cpu"})
        dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data_mb = dm.ds.image.numel() * 4 / 2**20
    print(json.dumps({"n": n, "method": method_name, "peak_rss_mb": round(peak / 1024, 1), "rss_before_eval_mb": round(base / 1024, 1),
                      "in_memory_test_images_mb": round(data_mb, 2), "seconds": round(dt, 1)}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["speed", "memory", "memory-one"])
    ap.add_argument("--n", type=int, nargs="+", default=[16])
    ap.add_argument("--method", default="attgan", choices=["attgan", "identity"], help="memory: the edited model")
    a = ap.parse_args()
    if a.what == "speed":
        speed(a.n[0])
    elif a.what == "memory-one":
        memory_one(a.n[0], a.method)
    else:  # each N in a fresh process, so peak RSS is that run's own
        for n in a.n:
            subprocess.run([sys.executable, __file__, "memory-one", "--n", str(n), "--method", a.method],
                           check=True)


if __name__ == "__main__":
    main()
