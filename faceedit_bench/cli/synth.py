"""``faceedit-bench synth``: export SynthFaces in the CelebA layout, or render a contact sheet.

``faceedit-bench synth --n 12000 --res 64`` writes, into ``data/synthfaces/n12000_r64`` (the folder
``--data synth`` with ``data.synth_n=12000`` reads; ``--out`` elsewhere), img_align_celeba/,
list_attr_celeba.txt, list_eval_partition.txt, CelebAMask-HQ-mask-anno/ and counterfactuals/
(docs/synthfaces.md); a killed run continues where it stopped. ``--contact-sheet PNG`` renders
faces + label maps + one column per attribute flip instead.
"""
from __future__ import annotations

import sys
import time

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench synth --res 128 --n 2000 --out data/synthfaces/n2000_r128',
)


def default_out(n: int, res: int, seed: int = 0) -> str:
    """The export folder the DataModule opens for ``data=synth, synth_n=n`` (seed 0)."""
    return f"data/synthfaces/n{n}_r{res}" + (f"_s{seed}" if seed else "")


def run(args) -> int:
    if args.contact_sheet:
        from ..data.contact_sheet import write_contact_sheet

        path = write_contact_sheet(args.contact_sheet, seed=args.seed, res=args.res)
        print(f"contact sheet: {path}")
        return 0
    from ..data.synth_export import export_synthfaces, split_sizes

    t0 = time.time()
    try:
        out = export_synthfaces(args.out or default_out(args.n, args.res, args.seed), args.n, args.res, seed=args.seed, progress=not args.no_progress,
                                workers=args.workers, compile=args.compile)
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tr, va, te = split_sizes(args.n)
    print(f"SynthFaces: {args.n} images at {args.res}px (train {tr} / val {va} / test {te}) in {out} "
          f"[{time.time() - t0:.1f}s]")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="export the SynthFaces dataset (CelebA layout) or a contact sheet",
                              description=__doc__)
    p.add_argument("--n", type=int, default=12000, help="number of images (default 12000)")
    p.add_argument("--res", type=int, default=64, help="image size in pixels (default 64)")
    p.add_argument("--out", default=None,
                   help="output folder (default data/synthfaces/n<N>_r<RES>, where --data synth looks)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--workers", type=int, default=None, help="render processes (default min(2, cores))")
    p.add_argument("--compile", action="store_true", help="torch.compile the renderer (slow to start)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--contact-sheet", metavar="PNG", default=None,
                   help="render a contact sheet to this PNG instead of exporting (uses --seed, --res)")
    p.set_defaults(func=run)
