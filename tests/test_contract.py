"""The method contract (DESIGN §10): a method added as one file + one config outside the package
appears everywhere; phases, frozen helpers, needs, test intensity, soft masks."""
from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest
import torch

import faceedit_bench.config as config_mod
import faceedit_bench.methods as methods_mod
from faceedit_bench.cli import main
from faceedit_bench.leaderboard.load import protocol_id

TOY = '''
"""A toy editor: a 3x3 conv G on [image, tiled code], a linear D; WGAN-GP, one critic step."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from faceedit_bench.methods import register
from faceedit_bench.methods.adversarial import AdversarialEditor
from faceedit_bench.methods.targets import shuffled_targets


class G(nn.Module):
    def __init__(self, n_attrs, dim=4):
        super().__init__()
        self.a = nn.Conv2d(3 + n_attrs, dim, 3, padding=1)
        self.b = nn.Conv2d(dim, 3, 3, padding=1)

    def forward(self, x, c):
        c = c[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return torch.tanh(x + self.b(F.relu(self.a(torch.cat([x, c], 1)))))


class D(nn.Module):
    def __init__(self, n_attrs, res):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.adv, self.cls = nn.Linear(48, 1), nn.Linear(48, n_attrs)

    def forward(self, x):
        h = self.pool(x).flatten(1)
        return self.adv(h), self.cls(h)


@register("{name}")
class ToyEditor(AdversarialEditor):
    """Toy editor of the contract test."""
    needs = frozenset([{needs}])

    def build_networks(self, nets):
        return {{"G": G(self.n_attrs, **nets.get("G", {{}})), "D": D(self.n_attrs, self.res)}}

    def test_code(self, src, tgt, intensity):
        return src + intensity * (tgt - src)

    def d_loss(self, batch, rng):
        x, a = batch["image"], batch["attrs"].float()
        with torch.no_grad():
            fake = self.generate(x, shuffled_targets(a, rng))
        (ra, rc), (fa, _) = self.d_real_fake(x, fake)
        loss = fa.mean() - ra.mean() + self.lambda_gp * self.gradient_penalty(x, fake, rng)
        return loss + F.binary_cross_entropy_with_logits(rc, a), {{"d_loss": loss}}

    def g_loss(self, batch, rng):
        x, a = batch["image"], batch["attrs"].float()
        b = shuffled_targets(a, rng)
        fake = self.generate(x, b)
        fa, fc = self.dis_net(fake)
        loss = -fa.mean() + F.binary_cross_entropy_with_logits(fc, b) + 10 * F.l1_loss(self.generate(x, a), x)
        return loss, {{"g_loss": loss}}
{extra}
'''

PARSER_EXTRA = '''
    def frozen_helpers(self):
        from faceedit_bench.methods.helpers import parser_helper

        return {"parser": parser_helper()}

    def phases(self):
        from faceedit_bench.methods.contract import Phase

        return [Phase("D", ("D",), "d_loss_parsed"), Phase("G", ("G",), "g_loss")]

    def d_loss_parsed(self, batch, rng):
        from faceedit_bench.methods.helpers import parse_probs

        loss, logs = self.d_loss(batch, rng)
        with torch.no_grad():
            probs = parse_probs(self.helper("parser"), batch["image"])
        return loss + 0.0 * probs.sum(), logs
'''

CONFIG = '''
name: {name}
resolutions: [32]
model:
  nets: {{G: {{dim: 8}}}}
train: {{lr: 1.0e-3, n_critic: 1, batch_size: 4, max_iters: 10, schedule: constant}}
variants:
  fast: {{label: "Toy (fast lr)", train: {{lr: 2.0e-3}}}}
for_profile:
  smoke: {{model: {{nets: {{G: {{dim: 2}}}}}}}}
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Write ``toy_<name>.py`` into a temporary package and its config into a temporary config
    folder; register through the public API; undo afterwards."""
    methods_mod.available()  # discover the package's methods into the real registry first
    monkeypatch.setattr(methods_mod, "_REGISTRY", dict(methods_mod._REGISTRY))
    monkeypatch.setattr(config_mod, "_EXTRA_DIRS", list(config_mod._EXTRA_DIRS))
    pkg = tmp_path / "plugins"
    monkeypatch.syspath_prepend(str(pkg))

    def make(name: str, needs: str = "", extra: str = "") -> str:
        (pkg / f"plug_{name}").mkdir(parents=True)
        (pkg / f"plug_{name}" / "__init__.py").write_text("")
        (pkg / f"plug_{name}" / f"{name}.py").write_text(TOY.format(name=name, needs=needs, extra=extra))
        (tmp_path / "configs" / "method").mkdir(parents=True, exist_ok=True)
        (tmp_path / "configs" / "method" / f"{name}.yaml").write_text(textwrap.dedent(CONFIG.format(name=name)))
        config_mod.add_config_dir(tmp_path / "configs")
        importlib.import_module(f"plug_{name}.{name}")
        for mod in (f"plug_{name}.{name}", f"plug_{name}"):
            monkeypatch.delitem(sys.modules, mod)
        return name

    return make


def _run_args(tmp_path, name):
    return ["--method", name, "--res", "32", "--profile", "smoke", f"out_dir={tmp_path / 'runs'}",
            f"data_dir={tmp_path / 'data'}", "data.num_workers=0"]


def test_a_method_in_one_file_and_one_config_appears_everywhere(plugin, tmp_path, capsys):
    name = plugin("toyedit")
    assert main(["methods"]) == 0
    assert any(line.startswith("toyedit") and "32" in line for line in capsys.readouterr().out.splitlines())
    assert main(["fit", *_run_args(tmp_path, name)]) == 0
    ev = ["eval", *_run_args(tmp_path, name), "--no-progress", "--results", str(tmp_path / "results"),
          "--out", str(tmp_path / "lb"), "--data-dir", str(tmp_path / "data")]
    assert main([*ev, "eval.test_intensity=0.5"]) == 0
    assert main([*ev, "eval.test_intensity=1.0"]) == 0
    recs = [json.loads(line) for line in (tmp_path / "results" / "results.jsonl").read_text().splitlines()]
    assert [r["method"] for r in recs] == [name, name]
    assert [r["protocol"]["test_intensity"] for r in recs] == [0.5, 1.0]   # the ones actually used
    ids = {protocol_id(r) for r in recs}
    assert len(ids) == 2
    board = (tmp_path / "lb" / "unified_synth_32.md").read_text()
    rows = [line for line in board.splitlines() if line.startswith(f"| {name} | smoke |")]
    assert len(rows) == 2 and all(any(pid in r for r in rows) for pid in ids)
    # the two intensities really edit differently (the code reaches edit())
    assert recs[0]["metrics"]["mre"] != recs[1]["metrics"]["mre"]
    # a variant of the one config: its own run folder, checkpoint, record and leaderboard row
    assert main(["fit", *_run_args(tmp_path, name), "--variant", "fast"]) == 0
    ckpt = tmp_path / "runs" / f"{name}-fast_32_synth_smoke" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["hyper_parameters"]["lr"] == 2e-3
    assert main([*ev, "--ckpt", str(ckpt)]) == 0
    last = json.loads((tmp_path / "results" / "results.jsonl").read_text().splitlines()[-1])
    assert last["variant"] == "fast"
    board = (tmp_path / "lb" / "unified_synth_32.md").read_text()
    assert any(line.startswith(f"| {name}/fast | smoke |") for line in board.splitlines())
    with pytest.raises(KeyError, match="no variant 'nosuch'; variants: \\['fast'\\]"):
        config_mod.compose_config(name, 32, profile="smoke", variant="nosuch")


def test_a_method_that_needs_parser_masks_stops_before_training(plugin, tmp_path, capsys):
    name = plugin("toyparts", needs='"parts"')
    rc = main(["fit", *_run_args(tmp_path, name), "data.masks=none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and "needs parts" in err[0] and "masks" in err[0]
    assert not (tmp_path / "runs" / f"{name}_32_synth_smoke" / "checkpoints").exists()


def test_bench_makes_the_synthfaces_parser_a_method_needs(plugin, tmp_path, monkeypatch, capsys):
    from faceedit_bench.parsing.weights import ENV_VAR

    monkeypatch.delenv(ENV_VAR, raising=False)
    name = plugin("toyparse", extra=PARSER_EXTRA)
    args = ["bench", *_run_args(tmp_path, name), "--no-progress", "--results", str(tmp_path / "results"),
            "--out", str(tmp_path / "lb"), "--data-dir", str(tmp_path / "data")]
    assert main(args) == 0
    out = capsys.readouterr().out
    made = list((tmp_path / "data" / "weights").glob("parser_synth_*_r32_s2.pt"))
    assert len(made) == 1 and "needs a face parser and none is configured" in out
    ckpt = torch.load(tmp_path / "runs" / f"{name}_32_synth_smoke" / "checkpoints" / "last.ckpt",
                      weights_only=True)
    from faceedit_bench.parsing.weights import file_sha256

    assert ckpt["faceedit_helpers"] == {"parser": file_sha256(made[0])}  # by hash, not weights
    assert not any(k.startswith("parser") for k in ckpt["state_dict"])


# ------------------------------------------------------------------ phases and helpers (no data)
from faceedit_bench.methods.adversarial import AdversarialEditor  # noqa: E402
from faceedit_bench.methods.contract import EditResult, Helper, Phase  # noqa: E402


class _Lin(torch.nn.Module):
    def __init__(self, n_in=3, n_out=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(n_in, n_out, 1)

    def forward(self, x, c=None):
        return self.conv(x)


def _load_helper(path):
    net = _Lin(3, 2)
    net.load_state_dict(torch.load(path, weights_only=True))
    return net


class HelperEditor(AdversarialEditor):
    """G, D and a frozen 'parser' whose output enters G's loss; D updated only every 2nd iteration."""

    method_name = "helper_editor"

    def frozen_helpers(self):
        return {"parser": Helper("parser", _load_helper, "TOY_PARSER", "make it with torch.save")}

    def build_networks(self, nets):
        return {"G": _Lin(), "D": _Lin(3, 1)}

    def phases(self):
        return [Phase("D", ("D",), "d_loss", every=2), Phase("G", ("G",), "g_loss")]

    def d_loss(self, batch, rng):
        return self.D(batch["image"]).mean() ** 2, {}

    def g_loss(self, batch, rng):
        return self.helper("parser")(self.G(batch["image"])).pow(2).mean(), {}

    def test_code(self, src, tgt, intensity):
        return tgt


@pytest.fixture
def helper_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "parser.pt"
    torch.save(_Lin(3, 2).state_dict(), path)
    return path


def test_frozen_helper_is_loaded_never_trained_and_not_checkpointed(helper_file, monkeypatch):
    monkeypatch.delenv("TOY_PARSER", raising=False)
    with pytest.raises(FileNotFoundError, match=r"helpers\.parser=PATH or \$TOY_PARSER; make it"):
        HelperEditor(res=8, n_critic=1).helper("parser")
    m = HelperEditor(res=8, n_critic=1, helpers={"parser": str(helper_file)})
    p = m.helper("parser")
    assert all(not q.requires_grad for q in p.parameters()) and not p.training
    assert not any(k.startswith("parser") or "_helpers" in k for k in m.state_dict())
    assert all(id(q) not in {id(x) for x in m.parameters()} for q in p.parameters())
    loss, _ = m.g_loss({"image": torch.rand(2, 3, 8, 8)}, torch.Generator())
    loss.backward()
    assert m.G.conv.weight.grad is not None and p.conv.weight.grad is None  # through, not into
    m.double()
    assert p.conv.weight.dtype == torch.float64  # follows the method
    ckpt = {}
    m.on_save_checkpoint(ckpt)
    assert len(ckpt["faceedit_helpers"]["parser"]) == 64  # sha256 of the file


def test_phase_every_and_chunks(helper_file):
    import lightning.pytorch as pl

    from faceedit_bench.callbacks import StopAtIteration
    from faceedit_bench.train_data import TrainStream

    from _train_worker import ToyFaces

    m = HelperEditor(attrs=("Bald", "Bangs", "Male"), res=8, helpers={"parser": str(helper_file)})
    assert m.chunks_per_iter == 2
    d0 = m.D.conv.weight.clone()
    stream = TrainStream(ToyFaces(n=24, res=8, n_attrs=3), 2, m.chunks_per_iter, 3)
    pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
               enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
               callbacks=[StopAtIteration(3)]).fit(m, datamodule=stream)
    assert m.iteration == 3
    steps = lambda name: int(m.phase_optimizer(name).state[next(iter(  # noqa: E731
        m.phase_optimizer(name).param_groups[0]["params"]))]["step"])
    assert (steps("D"), steps("G")) == (2, 3)  # D on iterations 0 and 2 only
    assert not torch.equal(d0, m.D.conv.weight)
    out = m.edit(torch.rand(2, 3, 8, 8), torch.zeros(2, 3), torch.ones(2, 3))
    assert isinstance(out, EditResult) and out.images.shape == (2, 3, 8, 8)


def test_phase_and_edit_result_validate():
    with pytest.raises(ValueError, match="updates"):
        Phase("G", (), "g_loss")
    with pytest.raises(TypeError, match="one row per image"):
        EditResult(torch.zeros(2, 3, 4, 4), {"attention": torch.zeros(3, 1, 4, 4)})
    with pytest.raises(ValueError, match="unknown networks"):
        class Bad(HelperEditor):
            def phases(self):
                return [Phase("X", ("nosuch",), "g_loss")]
        Bad(res=8)


def test_region_masks_from_one_soft_mask_function():
    from faceedit_bench.parts import AR_TABLE, ar_region_masks, attribute_region, part_masks

    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, 19, (3, 16, 16), generator=g, dtype=torch.uint8)
    tgt = torch.randint(0, 19, (3, 16, 16), generator=g, dtype=torch.uint8)
    on = torch.tensor([True, False, True])
    for attr in AR_TABLE:
        (p1, m1), (p2, m2) = (ar_region_masks(part_masks(x), [attr]) for x in (src, tgt))
        want = torch.where(on.view(-1, 1, 1), (p1 + p2)[:, 0] > 0.5, (m1 + m2)[:, 0] > 0.5)
        assert torch.equal(attribute_region(src, tgt, attr, on), want), attr
    soft = part_masks(src, smooth=1)
    assert torch.allclose(soft.sum(1), torch.ones(3, 16, 16)) and soft.max() < 1.0 + 1e-6
