"""``faceedit-bench masks``: parse every image of a dataset into 19-class label maps.

With the data store available, ``--data DIR`` (CelebA / CelebA-HQ layout) is built into a store
whose label maps come from the parser (``masks="parser"``) or, with ``--gt``, from the
CelebAMask-HQ-style ground-truth part masks (CelebAMask-HQ, SynthFaces exports). With
``--images-only`` (or without the store in this checkout) the images under DIR are parsed
straight into ``--out`` (``.npy`` uint8 N x R x R, rows in sorted file-name order, listed in
``<out>.files.txt``). Batched, on GPU when present, with a progress bar; a killed run continues
where it stopped and ends byte-identical to an uninterrupted one.
"""
from __future__ import annotations

import os
from pathlib import Path

IMAGE_DIRS = ("img_align_celeba", "CelebA-HQ-img")

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench masks --data /data/celeba --res 256 --parser-weights 79999_iter.pth',
    'faceedit-bench masks --data synth --res 64 --gt',
)


def _image_files(root: Path) -> list[Path]:
    for sub in IMAGE_DIRS:
        d = root / sub
        if d.is_dir():
            root = d
            break
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise FileNotFoundError(f"{root}: no .jpg/.png images found (expected {IMAGE_DIRS[0]}/ "
                                f"or {IMAGE_DIRS[1]}/ under --data)")
    return files


def _synth_count(root: Path) -> int:
    """Image count of a SynthFaces export: the first line of its ``list_attr_celeba.txt``."""
    attr = root / "list_attr_celeba.txt"
    try:
        return int(attr.read_text().split(None, 1)[0])
    except (OSError, ValueError, IndexError) as e:
        raise SystemExit(f"masks: {attr}: expected the image count on line 1 ({e})") from e


def _store_available() -> bool:
    try:
        from ..data.store import build_store  # noqa: F401
    except ImportError:
        return False
    return True


def run(args) -> int:
    root = Path(args.data)
    if not root.is_dir() and args.data in ("celeba", "celebahq"):  # a dataset name: default root
        from ..data.datamodule import DEFAULT_ROOTS

        args.dataset = args.dataset or args.data
        root = Path(DEFAULT_ROOTS[args.data])
    if not root.is_dir():
        raise SystemExit(f"masks: --data {root}: no such folder; expected a dataset folder in the "
                         f"CelebA layout (img_align_celeba/, list_attr_celeba.txt, ...) or the "
                         f"CelebA-HQ layout (CelebA-HQ-img/, CelebAMask-HQ-mask-anno/, ...)")
    masks = "gt" if args.gt else "parser"
    if masks == "parser":
        from ..parsing.weights import ParserWeightsError, resolve_weights_path

        try:
            weights = resolve_weights_path(args.parser_weights)
        except ParserWeightsError as e:
            raise SystemExit(f"masks: {e}")
    if args.images_only or not _store_available():
        if masks == "gt":
            raise SystemExit("masks --gt needs the data store (faceedit_bench.data.store)")
        from ..io_utils import atomic_write_bytes
        from ..parsing.precompute import precompute_masks

        files = _image_files(root)
        out = Path(args.out or root / f"parser_labels_{args.res}.npy")
        out.parent.mkdir(parents=True, exist_ok=True)
        listing = out.with_name(out.name + ".files.txt")
        atomic_write_bytes(listing, "".join(f"{p.name}\n" for p in files).encode("utf-8"))
        precompute_masks(files, weights, out, res=args.res, batch_size=args.batch_size,
                         device=args.device, overwrite=args.overwrite)
        print(f"label maps -> {out} ({len(files)} images; file order in {listing})")
        return 0
    from ..data.store import DEFAULT_CROP, build_store, store_name
    from ..parsing.train import guess_dataset

    dataset = args.dataset or guess_dataset(root)
    crop = args.crop or DEFAULT_CROP[dataset]
    # the folder FaceEditDataModule(data=dataset, masks=...) opens under --store-root
    tag = f"n{_synth_count(root)}" if dataset == "synth" else None  # as FaceEditDataModule names it
    out_dir = Path(args.out or Path(args.store_root) / store_name(dataset, args.res, crop, masks, tag=tag))
    path = build_store(root, out_dir, dataset, args.res, crop, masks=masks,
                       parser_weights=None if masks == "gt" else str(weights),
                       skip_bad=args.skip_bad, overwrite=args.overwrite, progress=True)
    print(f"store with {masks} label maps -> {path}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("masks", help="precompute 19-class parser (or ground-truth) masks",
                              description=__doc__)
    p.add_argument("--data", required=True,
                   help="dataset folder (CelebA / CelebA-HQ layout), or celeba / celebahq for "
                        "their default folders (data/celeba, data/CelebAMask-HQ)")
    p.add_argument("--parser-weights", default=None,
                   help="BiSeNet weights (79999_iter.pth or `parser train` output); "
                        "default $FACEEDIT_PARSER_WEIGHTS")
    p.add_argument("--res", type=int, required=True, help="output resolution")
    p.add_argument("--out", default=None, help="store folder (or .npy with --images-only)")
    p.add_argument("--gt", action="store_true",
                   help="use the ground-truth part masks (CelebAMask-HQ, SynthFaces) instead of a parser")
    p.add_argument("--dataset", default=None, choices=["celeba", "celebahq", "synth"],
                   help="layout of --data (default: guessed)")
    p.add_argument("--crop", default=None, help="crop name (protocol.CROPS); default the dataset's")
    p.add_argument("--store-root", default="data/stores")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda when present)")
    p.add_argument("--images-only", action="store_true",
                   help="parse the image files straight into --out .npy, without a store")
    p.add_argument("--overwrite", action="store_true", help="recompute an existing output")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable inputs (store)")
    p.set_defaults(func=run)
