import subprocess
import sys

import pytest

from carscope.commands.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_bad_usage_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "carscope", "nosuchcommand"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1


def test_import_is_light():
    code = "import sys, carscope.commands.cli; carscope.commands.cli.build_parser(); print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
