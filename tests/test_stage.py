"""What every stage script shares: one error line and exit 1 for a user's mistake."""

from __future__ import annotations

import logging

import pytest

from neurovision.errors import DataError, NeurovisionError, ParamError
from neurovision.stage import one_line, params_from, parser, run


def test_a_user_error_becomes_one_line_and_exit_1(caplog):
    def main(argv):
        raise DataError("data/x.npy: expected a dict,\n   got a list")

    with caplog.at_level(logging.ERROR):
        assert run(main, []) == 1
    assert [r.getMessage() for r in caplog.records] == ["data/x.npy: expected a dict, got a list"]


def test_success_is_exit_0_and_a_bug_is_not_swallowed():
    assert run(lambda argv: None, []) == 0

    def bug(argv):
        raise KeyError("a bug, not a user error")

    with pytest.raises(KeyError):
        run(bug, [])


def test_errors_are_value_errors_for_callers_that_catch_those():
    for cls in (DataError, ParamError):
        assert issubclass(cls, NeurovisionError) and issubclass(cls, ValueError)


def test_one_line_keeps_the_original_message_of_a_dataloader_worker_error():
    worker = ("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most "
              "recent call last):\n  File \"x.py\", line 1, in f\n    raise DataError(m)\n"
              "neurovision.errors.DataError: img.zip:a/b.jpg: cannot decode image")
    assert one_line(DataError(worker)) == "img.zip:a/b.jpg: cannot decode image"
    assert one_line(ValueError("  two\n lines ")) == "two lines"


def test_parser_reads_the_params_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("train:\n  mapper: pls\n")
    args = parser("a stage").parse_args(["--params", str(path)])
    assert params_from(args).train.mapper == "pls"
    assert parser("a stage").parse_args([]).params == "params.yaml"


@pytest.mark.parametrize("verbose", ["", "1"])
def test_other_libraries_info_is_quiet_unless_asked_for(verbose):
    import os
    import subprocess
    import sys

    code = ("import logging; from neurovision.stage import run; "
            "run(lambda argv: (logging.getLogger('open_clip').info('library detail'), "
            "logging.getLogger().info('root detail'), "
            "logging.getLogger('other').warning('library warning'), "
            "logging.getLogger('neurovision.x').info('our progress')), [])")
    env = {**os.environ, "NEUROVISION_VERBOSE": verbose}
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stderr
    assert "our progress" in err and "library warning" in err
    assert ("library detail" in err) == bool(verbose)
    assert ("root detail" in err) == bool(verbose)
