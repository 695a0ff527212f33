"""CLI errors: one `error:` line naming the problem and exit 2 (usage) or 1; a traceback only for bugs or --debug."""

import errno

import pytest

from pyramid_jax.errors import ArgumentError, ErrorExit, run_cli


def failing(error):
    def body(argv):
        raise error

    return body


@pytest.mark.parametrize("error,code,line", [
    (ArgumentError("--steps must be at least 1"), 2, "error: --steps must be at least 1"),
    (ValueError("bad shape"), 1, "error: bad shape"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.json"), 1,
     "error: [Errno 2] No such file or directory: 'x.json'"),
    (KeyboardInterrupt(), 130, "error: interrupted"),
])
def test_user_errors_print_one_line_and_exit_with_their_code(capsys, error, code, line):
    with pytest.raises(ErrorExit) as exit:
        run_cli(failing(error), [])
    assert exit.value.code == code and str(exit.value) == line
    assert capsys.readouterr().err == line + "\n"


def test_bugs_and_debug_keep_the_traceback():
    with pytest.raises(TypeError):
        run_cli(failing(TypeError("a bug")), [])
    with pytest.raises(ArgumentError):
        run_cli(failing(ArgumentError("bad")), ["--debug"])
    assert run_cli(lambda argv: 0, []) == 0
