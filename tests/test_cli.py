"""The `neurovision` command line: its subcommands and the console script."""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from neurovision import cli
from test_report import RANKS_A, TABLE, exp_show_rows, parse_markdown, write_results


def test_console_script_is_installed():
    (ep,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "neurovision"]
    assert ep.value == "neurovision.cli:main"
    assert ep.load() is cli.main


def test_app_command_line(tmp_path):
    cmd = cli.streamlit_command(tmp_path, None, 8600, "127.0.0.1", browser=False)
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(cmd[4]) == cli.APP_SCRIPT and cli.APP_SCRIPT.is_file()
    assert cli.APP_SCRIPT.name == "streamlit_app.py"
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[-3:] == ["--", "--root", str(tmp_path.resolve())]
    cmd = cli.streamlit_command(".", tmp_path / "b", 8501, "0.0.0.0", browser=True)
    assert cmd[cmd.index("--server.headless") + 1] == "false"
    assert cmd[-2:] == ["--bundle", str((tmp_path / "b").resolve())]


def test_parses_subcommands(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "run_app", lambda args: calls.append(args) or 0)
    assert cli.main(["app", "--bundle", "b", "--port", "9000", "--no-browser"]) == 0
    (args,) = calls
    assert (args.command, args.bundle, args.port, args.browser, args.root) == (
        "app", "b", 9000, False, ".")
    assert cli.main(["app"]) == 0
    assert (calls[1].root, calls[1].bundle, calls[1].port, calls[1].browser,
            calls[1].address) == (".", None, 8501, True, "127.0.0.1")
    with pytest.raises(SystemExit):
        cli.main([])
    with pytest.raises(SystemExit):
        cli.main(["nosuch"])


def test_table_subcommand_prints_the_table(tmp_path, capsys):
    saved = tmp_path / "exp.json"
    saved.write_text(json.dumps(exp_show_rows()))
    assert cli.main(["table", "--input", str(saved)]) == 0
    assert capsys.readouterr().out == TABLE
    assert cli.main(["table", "--input", str(saved), "--exp", "nosuch"]) == 1


def test_compare_subcommand_reads_two_runs_and_prints_the_table(tmp_path, capsys):
    write_results(tmp_path, {1: RANKS_A[1]})
    assert cli.main(["compare", "workspace", "workspace", "--root", str(tmp_path),
                     "--resamples", "500", "--seed", "3", "--k", "2"]) == 0
    header, rows, notes = parse_markdown(capsys.readouterr().out)
    assert header[1] == "workspace top-2 %" and rows[0][0] == "sub-01"
    assert "500 resamples, seed 3" in notes[1]
    assert cli.main(["compare", "workspace", "nosuch", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith("nosuch: not an experiment, a git revision")
    with pytest.raises(SystemExit):
        cli.main(["compare", "workspace"])  # two runs are needed
