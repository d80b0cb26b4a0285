"""The CLI: help for every subcommand, unknown method names, config composition."""
import subprocess
import sys

import pytest

from faceedit_bench.cli import build_parser, main
from faceedit_bench.config import compose_config, method_resolutions
from faceedit_bench.methods import UnknownMethodError, available, get_method_class


def _subcommands():
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


def test_top_level_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "faceedit_bench.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for name in _subcommands():
        assert name in out


@pytest.mark.parametrize("command", _subcommands())
def test_each_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: faceedit-bench " + command in capsys.readouterr().out


def test_unknown_method_lists_registered(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["config", "--method", "nosuchgan"])
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "nosuchgan" in err and "registered methods" in err
    assert len(err.strip().splitlines()) == 1  # one line, not a usage dump
    for name in available():
        assert name in err
    with pytest.raises(UnknownMethodError, match="identity"):
        get_method_class("nosuchgan")


def test_every_method_config_composes():
    for name in available():
        for res in method_resolutions(name):
            cfg = compose_config(name, res)
            assert cfg.method.name == name and cfg.res == res


def test_missing_resolution_names_file():
    with pytest.raises(FileNotFoundError, match=r"configs/method/identity.yaml: .*999 px"):
        compose_config("identity", 999)


def test_identity_returns_input():
    import torch

    m = get_method_class("identity")()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    a = torch.zeros(2, m.n_attrs)
    assert torch.equal(m.edit(x, a, 1 - a).images, x)


def test_usage_errors_and_version_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom faceedit_bench.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nsys.exit(rc)\n")
    for argv, rc, stream in ((["bench", "--method", "nope"], 2, "stderr"), (["--version"], 0, "stdout")):
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
        assert out.returncode == rc, out.stderr
        text = getattr(out, stream)
        assert len(text.strip().splitlines()) == 1
    assert text.startswith("faceedit-bench 0.")
