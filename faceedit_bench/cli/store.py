"""``faceedit-bench store``: decode a CelebA / CelebA-HQ / SynthFaces folder into a store."""
from __future__ import annotations

import sys


def run(args) -> int:
    from pathlib import Path

    from ..data.celeba import DataFormatError
    from ..data.store import DEFAULT_CROP, Store, build_store, store_name

    crop = args.crop or DEFAULT_CROP[args.dataset]
    out = Path(args.out) if args.out else Path("data/stores") / store_name(
        args.dataset, args.res, crop, args.masks, args.split)
    try:
        path = build_store(args.data, out, args.dataset, args.res, crop=crop, masks=args.masks,
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
    p.add_argument("--data", required=True, help="source folder (CelebA layout, CelebAMask-HQ, "
                   "or a SynthFaces export)")
    p.add_argument("--dataset", required=True, choices=["celeba", "celebahq", "synth"])
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
