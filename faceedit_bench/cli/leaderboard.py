"""``faceedit-bench leaderboard``: re-render leaderboards/ from results/*.jsonl and the papers' CSVs."""
from __future__ import annotations

import sys
from pathlib import Path

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench leaderboard                            # results/ + outputs/results/ -> leaderboards/',
    'faceedit-bench leaderboard --results outputs/results --out /tmp/boards --no-charts',
)


def run(args) -> int:
    from ..leaderboard import render_all
    from ..leaderboard.load import PaperTableError
    from ..results import ResultsFileError

    try:
        results = args.results or [d for d in ("results", "outputs/results") if Path(d).is_dir()] or ["results"]
        curves = args.curves if args.curves != "none" else None
        written = render_all(results, args.out, args.papers, charts=not args.no_charts, curves=curves)
    except (ResultsFileError, PaperTableError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"rendered {len(written)} files into {args.out}/ (index: {args.out}/README.md)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("leaderboard", help="render leaderboards from the result records",
                              description=__doc__)
    p.add_argument("--results", action="append", default=None,
                   help="folder of result files (*.jsonl); repeatable (default: results/ and outputs/results/)")
    p.add_argument("--out", default="leaderboards", help="output folder")
    p.add_argument("--papers", default=None, help="papers' CSVs (default: <out>/papers)")
    p.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    p.add_argument("--curves", default="benchmarks/time_to_quality.jsonl",
                   help="time-to-quality rows counted by the metric validity report (none: only records)")
    p.set_defaults(func=run)
