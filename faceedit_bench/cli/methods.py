"""``faceedit-bench methods``: the registered methods, their resolutions, tracks and needs."""
from __future__ import annotations

#: shown under ``--help``
EXAMPLES = (
    'faceedit-bench methods',
)


def run(args) -> int:
    from ..config import method_resolutions
    from ..methods import available, get_method_class

    for name in available():
        cls = get_method_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        res = ",".join(str(r) for r in method_resolutions(name)) or "-"
        needs = ",".join(sorted(cls.needs)) or "-"
        print(f"{name:10s} res {res:18s} tracks {','.join(cls.tracks):15s} needs {needs:8s} {doc}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("methods", help="list the registered methods",
                              description=__doc__)
    p.set_defaults(func=run)
