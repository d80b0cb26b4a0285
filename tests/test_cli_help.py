"""``--help`` of every command: the defaults shown, and examples that are valid command lines."""
from __future__ import annotations

import importlib
import pkgutil
import shlex

import pytest

import faceedit_bench.cli as cli

COMMANDS = [i.name for i in pkgutil.iter_modules(cli.__path__) if not i.name.startswith("_")]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_shows_examples_that_parse(name, capsys):
    module = importlib.import_module(f"faceedit_bench.cli.{name}")
    examples = getattr(module, "EXAMPLES", ())
    assert examples, f"faceedit_bench/cli/{name}.py has no EXAMPLES"
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([name, "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text
    for line in examples:
        argv = shlex.split(line.split("  #")[0])
        assert argv[0] == "faceedit-bench" and argv[1] == name, line
        args, rest = parser.parse_known_args(argv[1:])
        assert all("=" in r and not r.startswith("-") for r in rest), (line, rest)
        assert callable(args.func), line


def test_defaults_are_shown(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["edit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: outputs/edits)" in out and "(default: attgan170)" in out
