"""pytest plugin used when running Nengo's own test suite (see tests/conformance/).

Mirrors the per-test settings of Nengo's own repository conftest, which is not
installed with the package: no decoder cache, full exceptions, no progress bars.
"""

from nengo.rc import rc


def pytest_runtest_setup(item):
    rc.reload_rc([])
    rc["decoder_cache"]["enabled"] = "False"
    rc["exceptions"]["simplified"] = "False"
    rc["nengo.Simulator"]["fail_fast"] = "True"
    rc["progress"]["progress_bar"] = "False"
