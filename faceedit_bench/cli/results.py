"""``faceedit-bench results FILE...``: validate result files and summarise their records."""
from __future__ import annotations

import sys

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench results results/results.jsonl',
)


def run(args) -> int:
    from ..results import ResultsFileError, read_records

    status = 0
    for path in args.files:
        try:
            records = read_records(path)
        except (ResultsFileError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"{path}: {len(records)} valid records")
        for rec in records[-args.last:] if args.last else []:
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in rec["metrics"].items() if v is not None)
            print(f"  {rec['method']} {rec['dataset']} {rec['resolution']}px n={rec['n_images']}: {metrics}")
    return status


def register(subparsers) -> None:
    p = subparsers.add_parser("results", help="validate result files (JSON lines)",
                              description=__doc__)
    p.add_argument("files", nargs="+", help="results .jsonl files")
    p.add_argument("--last", type=int, default=5, help="show the last N records of each file")
    p.set_defaults(func=run)
