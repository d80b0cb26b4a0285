"""`synth` exports where `--data synth` looks, and `masks --gt` names the store as the DataModule."""
from pathlib import Path

from faceedit_bench.cli import main
from faceedit_bench.data.datamodule import FaceEditDataModule


def test_synth_default_folder_and_masks_store_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["synth", "--n", "20", "--res", "16", "--workers", "1", "--no-progress"]) == 0
    root = Path("data/synthfaces/n20_r16")
    assert (root / "list_attr_celeba.txt").read_text().split()[0] == "20"
    dm = FaceEditDataModule(data="synth", res=16, synth_n=20, batch_size=4, num_workers=0,
                            store_root="data/stores")
    assert dm.root == root
    assert main(["masks", "--data", str(root), "--res", "16", "--gt", "--dataset", "synth",
                 "--store-root", "data/stores"]) == 0
    assert dm.store_path.is_dir(), sorted(p.name for p in Path("data/stores").iterdir())
