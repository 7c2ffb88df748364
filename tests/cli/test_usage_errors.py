"""The `lmech` entry point: a usage error (typo in an option, missing argument, malformed value) is
one line on stderr and exit 2, like every other bad input; exit codes of commands pass through."""

import subprocess
import sys

import pytest

from lmech.cli.commands import run_app


@pytest.mark.parametrize("args, says", [
    (["atlas", "--fast", "--store", "x"], "No such option: --store"),
    (["run"], "Missing argument"),
    (["sweep", "--workers", "abc", "x.yaml"], "Invalid value for '--workers'"),
    (["forecast", "max-lr", "--model"], "requires an argument"),
    (["no-such-command"], "No such command"),
])
def test_usage_errors_are_one_line_and_exit_2(args, says, capsys):
    assert run_app(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "--help" in lines[0], captured.err
    assert "Traceback" not in captured.err + captured.out


def test_input_errors_keep_their_exit_code_and_bare_groups_show_help(capsys):
    assert run_app(["run", "no-such-phenomenon"]) == 2
    assert "unknown phenomenon" in capsys.readouterr().err
    assert run_app([]) == 0 and "Usage" in capsys.readouterr().out
    assert run_app(["forecast"]) == 0 and "max-lr" in capsys.readouterr().out
    assert run_app(["--version"]) == 0


def test_the_installed_command_exits_2_on_a_typo():
    done = subprocess.run([sys.executable, "-c", "from lmech.cli import main; main()", "atlas", "--fsat"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
