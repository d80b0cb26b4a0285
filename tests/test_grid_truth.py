"""SynthFaces edit grids show, beside each flip, the true counterfactual: the renderer's own
rendering of the same face with that attribute flipped."""
from __future__ import annotations

import numpy as np

from faceedit_bench.bench import BenchOptions, edit_grid_arrays, make_datamodule
from faceedit_bench.build import build_method
from faceedit_bench.config import compose_config
from faceedit_bench.data.synthfaces import flip_targets, render_batch, to_uint8


def test_truth_columns_are_the_rendered_counterfactuals(tmp_path):
    cfg = compose_config("identity", 32, profile="smoke", overrides=["data.num_workers=0"])
    dm = make_datamodule(cfg, BenchOptions(data_dir=tmp_path))
    dm.prepare_data()
    dm.setup("test")
    imgs, labels, names = edit_grid_arrays(build_method(cfg), dm, n_rows=2)
    assert names[:3] == ["input", "recon", f"flip {dm.attrs[0]}"] and names[3] == f"true {dm.attrs[0]}"
    batch = dm.dataset("test").__getitems__([0, 1])
    idx = batch["index"].numpy()  # the faces' indices in the SynthFaces export
    src = render_batch(0, idx, 32)
    for attr in ("Blond_Hair", "Eyeglasses", "Pale_Skin"):
        target = flip_targets(src["attrs"].numpy())[attr]
        truth = to_uint8(render_batch(0, idx, 32, attrs=target)["image"])
        col = imgs[:, names.index(f"true {attr}")]
        assert np.abs(col.astype(int) - truth.astype(int)).max() <= 1, attr
        assert np.abs(col.astype(int) - imgs[:, 0].astype(int)).max() > 20, attr  # it really differs
