"""Running a function in a forked child process (tests of what a fork leaves
behind: the parent's threads are gone in the child)."""

import os
import pickle
import select

import pytest


def run_forked(fn, timeout=120):
    """``fn()`` run in a forked child; its result (pickled back).  Fails the
    test if the child fails or gives nothing within ``timeout`` seconds (a
    child waiting on threads that do not exist there)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with os.fdopen(write, "wb") as out:
                pickle.dump(fn(), out)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    if not select.select([read], [], [], timeout)[0]:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read)
        pytest.fail(f"the forked process gave nothing in {timeout} s (hung?)")
    with os.fdopen(read, "rb") as inp:
        try:
            result = pickle.load(inp)
        except EOFError:
            result = None
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, "the forked process failed"
    return result
