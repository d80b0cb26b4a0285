"""``faceedit-bench store``: decode a CelebA / CelebA-HQ / SynthFaces folder into a store."""
from __future__ import annotations

import sys

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench store --data synth --res 64',
    'faceedit-bench store --data /data/celeba --res 128',
)


DATASETS = ("celeba", "celebahq", "synth")


def infer_dataset(folder) -> str | None:
    """celeba | celebahq | synth from the files a folder holds (None when unknown)."""
    from pathlib import Path

    f = Path(folder)
    if (f / "CelebAMask-HQ-attribute-anno.txt").is_file():
        return "celebahq"
    if (f / "synthfaces.json").is_file():
        return "synth"
    if (f / "list_attr_celeba.txt").is_file():
        return "celeba"
    return None


def resolve(args):
    """(source folder, dataset) from --data (a folder or a dataset name) and --dataset."""
    from pathlib import Path

    from ..data.datamodule import DEFAULT_ROOTS
    from ..protocol import DEFAULT_SYNTH_N

    if args.synth_n is None:
        args.synth_n = DEFAULT_SYNTH_N
    if args.data in DATASETS and not Path(args.data).is_dir():
        dataset = args.dataset or args.data
        if dataset == "synth":
            from ..data.synth_export import MANIFEST, export_synthfaces

            root = Path(f"data/synthfaces/n{args.synth_n}_r{args.res}")
            if not (root / MANIFEST).is_file():
                export_synthfaces(root, n=args.synth_n, res=args.res, seed=0)
            return root, dataset
        return Path(DEFAULT_ROOTS[dataset]), dataset
    dataset = args.dataset or infer_dataset(args.data)
    if dataset is None:
        raise FileNotFoundError(
            f"{args.data}: no list_attr_celeba.txt or CelebAMask-HQ-attribute-anno.txt; pass "
            "--dataset celeba|celebahq|synth and a folder in that layout (docs/data.md)")
    return Path(args.data), dataset


def run(args) -> int:
    from pathlib import Path

    from ..data.celeba import DataFormatError
    from ..data.store import DEFAULT_CROP, Store, build_store, store_name

    try:
        root, dataset = resolve(args)
    except (FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    crop = args.crop or DEFAULT_CROP[dataset]
    tag = f"n{args.synth_n}" if (dataset == "synth" and args.data == "synth") else None
    out = Path(args.out) if args.out else Path("data/stores") / store_name(
        dataset, args.res, crop, args.masks, args.split, tag=tag)
    try:
        path = build_store(root, out, dataset, args.res, crop=crop, masks=args.masks,
                           parser_weights=args.parser_weights, skip_bad=args.skip_bad,
                           split=args.split, resize_filter=args.resize_filter,
                           workers=args.workers, overwrite=args.overwrite, progress=True)
    except (DataFormatError, FileNotFoundError, FileExistsError, ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    st = Store(path)
    m = st.manifest
    counts = " / ".join(f"{k} {v}" for k, v in m["split"]["counts"].items())
    print(f"store {path}: {m['n']} images {m['res']}px, crop {m['crop']['name']}, masks "
          f"{m['masks']}, split {m['split']['rule']} ({counts}), hash {st.hash}")
    if m["skipped"]:
        print(f"skipped {len(m['skipped'])} (listed in {path / 'manifest.json'}):")
        for s in m["skipped"][:10]:
            print(f"  {s['reason']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("store", help="decode a dataset folder into a memory-mapped store",
                              description=__doc__)
    p.add_argument("--data", required=True, help="source folder (CelebA layout, CelebAMask-HQ, or a "
                   "SynthFaces export), or a dataset name for its default folder (data/celeba, "
                   "data/CelebAMask-HQ, data/synthfaces/n<N>_r<res>, exported when missing)")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="layout of --data (default: inferred from the files)")
    p.add_argument("--synth-n", "--n", dest="synth_n", type=int, default=None,
                   help="images of a SynthFaces export (when --data synth; default protocol.DEFAULT_SYNTH_N, 5000)")
    p.add_argument("--res", type=int, required=True, help="output side in pixels")
    p.add_argument("--out", default=None, help="store folder (default data/stores/<name>)")
    p.add_argument("--crop", default=None, help="attgan170 | center178 | none "
                   "(default: attgan170 for celeba, none otherwise)")
    p.add_argument("--masks", default="gt", choices=["gt", "parser", "none"])
    p.add_argument("--parser-weights", default=None, help="BiSeNet weights for --masks parser")
    p.add_argument("--split", default=None, help="attgan | stargan | partition | celebahq | "
                   "celebamask (default per dataset)")
    p.add_argument("--resize-filter", default="bicubic",
                   choices=["bicubic", "bilinear", "lanczos", "box", "nearest"])
    p.add_argument("--workers", type=int, default=None, help="decode processes (default: cores, max 8)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip bad rows/images/masks and list them in the manifest instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="rebuild even if the store exists")
    p.set_defaults(func=run)
