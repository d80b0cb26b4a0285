"""FaceEditDataModule: batch contract, seeded order, rank shards, resumable order, counterfactuals."""
import json

import lightning as L
import numpy as np
import pytest
import torch

from _celeba_fixtures import write_celeba
from faceedit_bench.data.datamodule import FaceEditDataModule
from faceedit_bench.data.sampler import ResumableSampler
from faceedit_bench.protocol import CELEBA_ATTRS, DEFAULT_ATTRS


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    n = 40
    part = [0] * 28 + [1] * 4 + [2] * 8
    return write_celeba(tmp_path_factory.mktemp("src"), n=n, hw=(16, 16), partition=part)


def _dm(root, tmp, **kw):
    kw = {"data": "synth", "root": str(root), "res": 8, "batch_size": 4, "num_workers": 0,
          "store_root": str(tmp / "stores"), **kw}
    dm = FaceEditDataModule(**kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_batch_contract(synth_root, tmp_path):
    dm = _dm(synth_root, tmp_path, attrs=["Smiling", "Bald", "Young"], num_workers=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 8, 8) and batch["image"].dtype == torch.float32
    assert -1 <= batch["image"].min() and batch["image"].max() <= 1
    assert batch["attrs"].shape == (4, 3) and batch["attrs"].dtype == torch.float32
    assert batch["parts"].shape == (4, 8, 8) and batch["parts"].dtype == torch.uint8
    assert batch["index"].dtype == torch.int64
    st = dm.store
    rows = batch["index"].numpy()
    assert set(rows) <= set(st.split_indices("train").tolist())
    cols = [CELEBA_ATTRS.index(a) for a in ("Smiling", "Bald", "Young")]
    np.testing.assert_array_equal(batch["attrs"].numpy(), st.attrs[rows][:, cols])
    np.testing.assert_array_equal(batch["parts"].numpy(), st.labels[rows])
    want = torch.from_numpy(st.images[rows].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(batch["image"], want)
    assert len(dm.data_hash) == 16 and "cf_image" not in batch
    test = list(dm.test_dataloader())
    assert [b["index"].tolist() for b in test] == [[32, 33, 34, 35], [36, 37, 38, 39]]
    assert sum(len(b["index"]) for b in dm.val_dataloader()) == 4


def test_seeded_order_and_rank_shards():
    a = [list(ResumableSampler(10, seed=3)) for _ in range(2)]
    assert a[0] == a[1] and sorted(a[0]) == list(range(10))
    assert list(ResumableSampler(10, seed=4)) != a[0]
    s = ResumableSampler(10, seed=3)
    s.set_epoch(1)
    assert list(s) != a[0]
    shards = [list(ResumableSampler(10, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert all(len(x) == 4 for x in shards)          # padded by wrapping, like DistributedSampler
    assert set().union(*shards) == set(range(10))
    even = [set(ResumableSampler(12, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert set().union(*even) == set(range(12)) and sum(len(x) for x in even) == 12  # disjoint
    cut = [list(ResumableSampler(10, seed=3, rank=r, world_size=3, drop_last=True)) for r in range(3)]
    assert sum(len(x) for x in cut) == 9 and len(set().union(*cut)) == 9


def test_sampler_state_resumes_same_order():
    full = ResumableSampler(12, seed=7)
    full.set_epoch(2)
    ref = list(full)
    s = ResumableSampler(12, seed=7)
    s.set_epoch(2)
    it = iter(s)
    head = [next(it) for _ in range(5)]
    state = s.state_dict()
    assert state["position"] == 5
    t = ResumableSampler(12, seed=7)
    t.load_state_dict(state)
    t.set_epoch(2)
    assert head + list(t) == ref
    t.set_epoch(3)                                    # next epoch starts from its beginning
    assert len(list(t)) == 12
    with pytest.raises(ValueError, match="world size"):
        ResumableSampler(12, seed=7, world_size=2).load_state_dict(state)


class _Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch["index"].tolist())
        return (self.w * batch["image"].mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _trainer(tmp, steps, **kw):
    return L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, accelerator="cpu", devices=1,
                     default_root_dir=str(tmp), num_sanity_val_steps=0, limit_val_batches=0,
                     **kw)


def test_lightning_resume_continues_same_order(synth_root, tmp_path):
    # 28 train rows, batch 4 -> 7 batches per epoch; stop mid-epoch 2 and resume.
    ref = _Recorder()
    _trainer(tmp_path / "a", 10).fit(ref, datamodule=_dm(synth_root, tmp_path, seed=5))
    assert len(ref.seen) == 10
    first = _Recorder()
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", every_n_train_steps=9,
                                               save_top_k=-1)
    _trainer(tmp_path / "b", 9, callbacks=[ckpt]).fit(first, datamodule=_dm(synth_root, tmp_path, seed=5))
    path = next((tmp_path / "ck").glob("*step=9*.ckpt"))
    dm_state = torch.load(path, weights_only=False)["FaceEditDataModule"]
    assert dm_state["epoch"] == 1 and dm_state["position"] == 8
    second = _Recorder()
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(tmp_path / "c", 10).fit(second, datamodule=_dm(synth_root, tmp_path, seed=5),
                                         ckpt_path=str(path))
    assert first.seen + second.seen == ref.seen
    assert not [w for w in caught if "not resumable" in str(w.message)]


def test_counterfactual_batches(synth_root, tmp_path):
    dm = _dm(synth_root, tmp_path, attrs=["Bald", "Smiling"])
    st = dm.store
    n_test = len(st.split_indices("test"))
    man = st.manifest
    (st.path / "cf").mkdir()
    for k, a in enumerate(["Bald", "Smiling"]):
        np.save(st.path / "cf" / f"{a}_images.npy", np.full((n_test, 8, 8, 3), 10 * k, np.uint8))
        np.save(st.path / "cf" / f"{a}_labels.npy", np.full((n_test, 8, 8), k + 1, np.uint8))
        np.save(st.path / "cf" / f"{a}_attrs.npy", np.zeros((n_test, 40), np.uint8))
    man["counterfactuals"] = {"attrs": ["Bald", "Smiling"], "n": n_test}
    (st.path / "manifest.json").write_text(json.dumps(man))
    dm.store = None
    dm.setup("test")
    b = next(iter(dm.test_dataloader()))
    assert b["cf_image"].shape == (4, 2, 3, 8, 8) and b["cf_parts"].shape == (4, 2, 8, 8)
    assert b["cf_parts"][:, 1].eq(2).all() and b["cf_parts"][:, 0].eq(1).all()
    torch.testing.assert_close(b["cf_image"][:, 1], torch.full((4, 3, 8, 8), 10 / 127.5 - 1))
    assert "cf_image" not in next(iter(dm.val_dataloader()))
    assert not FaceEditDataModule(attrs=DEFAULT_ATTRS).has_counterfactuals


def test_data_configs_map_to_kwargs(tmp_path):
    from omegaconf import OmegaConf

    from faceedit_bench.config import config_dir

    for f in sorted((config_dir() / "data").glob("*.yaml")):
        kw = OmegaConf.to_container(OmegaConf.load(f))
        dm = FaceEditDataModule(**kw, res=32, store_root=str(tmp_path))
        assert dm.data == f.stem and dm.crop == kw["crop"]


def test_prepare_data_exports_synthfaces_and_serves_counterfactuals(tmp_path):
    dm = FaceEditDataModule(data="synth", root=str(tmp_path / "sf"), synth_n=40, res=32,
                            batch_size=4, num_workers=0, store_root=str(tmp_path / "stores"),
                            attrs=["Bald", "Smiling"])
    dm.prepare_data()
    dm.setup("test")
    assert (tmp_path / "sf" / "synthfaces.json").is_file() and dm.has_counterfactuals
    b = next(iter(dm.test_dataloader()))
    assert b["cf_image"].shape == (4, 2, 3, 32, 32) and b["cf_parts"].shape == (4, 2, 32, 32)
    img, lab, _ = dm.store.counterfactuals("Smiling")
    pos = b["index"].numpy() - dm.store.split_indices("test")[0]
    np.testing.assert_array_equal(b["cf_parts"][:, 1].numpy(), lab[pos])
    dm.prepare_data()                      # second call: export and store reused


def test_ranks_get_distinct_shards(synth_root, tmp_path):
    """Under DDP each rank's train loader serves its own shard of the seeded global order."""
    from types import SimpleNamespace

    dm = _dm(synth_root, tmp_path, seed=2)
    seen = []
    for rank in range(2):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        seen.append(sum((b["index"].tolist() for b in dm.train_dataloader()), []))
        assert sum(len(b["index"]) for b in dm.test_dataloader()) == 4      # 8 test rows / 2
    dm.trainer = None
    assert len(seen[0]) == len(seen[1]) == 12 and not set(seen[0]) & set(seen[1])
    order = ResumableSampler(28, seed=2).order(0)             # global order, sharded rank::2
    rows = dm.store.split_indices("train")
    assert seen[0] == rows[order[0::2][:12]].tolist() and seen[1] == rows[order[1::2][:12]].tolist()
