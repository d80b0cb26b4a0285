"""``faceedit-bench <command>``: the one entry point; the Makefile only calls this.

Each subcommand lives in its own module here and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed args, returning an exit code), and
``EXAMPLES`` (command lines shown under its ``--help``). Modules are discovered, so a new
command is one new file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


class HelpWithDefaults(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (the modules' docstrings) and each option's default appended,
    unless its help already says it or there is none to say."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if ("default" in text or d in (None, False, argparse.SUPPRESS) or d == []
                or action.option_strings == [] or isinstance(action, argparse._VersionAction)):
            return text
        return f"{text} (default: %(default)s)"


class OneLineErrors(argparse.ArgumentParser):
    """Usage errors as one line (``faceedit-bench bench: error: ...``) plus where help is,
    instead of argparse's usage dump; help with the defaults and the command's examples."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpWithDefaults)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def version() -> str:
    """Package version and the checkout's commit (when run from a git checkout)."""
    import subprocess
    from pathlib import Path

    from .. import __version__

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parents[2], timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"faceedit-bench {__version__}" + (f" (commit {commit})" if commit else "")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="faceedit-bench",
        description="Train and evaluate face attribute editing GANs under one recorded protocol. "
                    "Quickstart: `faceedit-bench bench` (SynthFaces, STGAN, 6 CPU-minutes).",
    )
    parser.add_argument("--version", action="version", version=version())
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True,
                                       parser_class=OneLineErrors)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
        examples = getattr(module, "EXAMPLES", ())
        if examples and info.name in subparsers.choices:
            subparsers.choices[info.name].epilog = "examples:\n" + "".join(f"  {e}\n" for e in examples)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    # key=value overrides may follow options (argparse stops collecting positionals at them)
    stray = [a for a in rest if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    return run_command(args.func, args)


def run_command(func, args) -> int:
    """``func(args)`` with the CLI's error handling: Ctrl-C 130; a user error (bad config value,
    checkpoint, weights file) one line and 2; a resource fault (disk full, read-only) one line
    and 1."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ValueError as e:
        if not _user_error(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        from ..resource_errors import is_resource_error, one_line

        if not is_resource_error(e):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1


def _user_error(e: BaseException) -> bool:
    """A bad config value, checkpoint or weights file: one line on stderr, exit 2, whichever
    command met it (imported only when an error happened: no torch import on the happy path)."""
    from ..config import ConfigError

    io = sys.modules.get(f"{__package__.rsplit('.', 1)[0]}.io_utils")  # not imported: not its error
    io_errors = (io.CheckpointError, io.CorruptFileError, io.UnsafeFileError) if io else ()
    return isinstance(e, (ConfigError, *io_errors))


if __name__ == "__main__":
    sys.exit(main())
