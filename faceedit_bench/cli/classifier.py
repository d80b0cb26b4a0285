"""``faceedit-bench classifier``: train the TARR attribute classifier on a dataset's store.

LynnHo/STGAN architecture (metrics/classifier.py); trains on the train split, measures the
held-out (val) accuracy, and saves weights + accuracy to ``--out`` (default
``data/classifiers/<data_hash>_<res>.pt``, where ``bench``/``eval`` look for it).
"""
from __future__ import annotations

import sys

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench classifier --data synth --res 64',
)


def run(args) -> int:
    from ..data.datamodule import FaceEditDataModule
    from ..metrics.classifier import default_classifier_path, load_classifier, train_classifier
    from ..protocol import DEFAULT_ATTRS

    attrs = args.attrs.split(",") if args.attrs else list(DEFAULT_ATTRS)
    kw = dict(data=args.data, root=args.root, res=args.res, attrs=attrs, batch_size=args.batch_size,
              num_workers=args.workers, store_root=args.store_root)
    if args.synth_n is not None:
        kw["synth_n"] = args.synth_n
    try:
        dm = FaceEditDataModule(**kw)
        dm.prepare_data()
        dm.setup("fit")
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or default_classifier_path(dm.data_hash, args.res, args.classifiers_dir)
    accel = args.accelerator or ("gpu" if __import__("torch").cuda.is_available() else "cpu")
    print(f"training the attribute classifier on {args.data} {args.res}px "
          f"({len(attrs)} attributes, {args.epochs} epochs) -> {out}", flush=True)
    path = train_classifier(dm, out, epochs=args.epochs, width=args.width, lr=args.lr,
                            trainer_kwargs={"accelerator": accel, "devices": 1})
    net = load_classifier(path)
    print(f"saved {path}: held-out accuracy {net.accuracy:.4f} (val split, mean over "
          f"{len(net.attrs)} attributes)")
    for a, v in net.per_attribute_accuracy.items():
        print(f"  {a:<22} {v:.4f}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("classifier", help="train the attribute classifier used by TARR",
                              description=__doc__)
    p.add_argument("--data", default="synth", choices=["synth", "celeba", "celebahq"])
    p.add_argument("--root", default=None, help="dataset folder (default per dataset)")
    p.add_argument("--res", type=int, default=64, help="image side (multiple of 32; official: 128)")
    p.add_argument("--out", default=None, help="output file (default data/classifiers/<data_hash>_<res>.pt)")
    p.add_argument("--classifiers-dir", default="data/classifiers")
    p.add_argument("--store-root", default="data/stores")
    p.add_argument("--attrs", default=None, help="comma-separated attribute names (default: the 13)")
    p.add_argument("--epochs", type=int, default=25, help="official recipe: 25")
    p.add_argument("--batch-size", type=int, default=64, help="official: 64")
    p.add_argument("--width", type=int, default=16, help="first conv width (official: 16)")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (official: 2e-4)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--synth-n", type=int, default=None, help="SynthFaces images (default: the data module's)")
    p.add_argument("--accelerator", default=None, help="cpu | gpu (default: gpu when present)")
    p.set_defaults(func=run)
