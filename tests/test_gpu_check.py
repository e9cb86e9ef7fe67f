"""benchmarks/gpu_check.py: a failed CUDA-vs-CPU comparison is rerun with each
launch-count lever off, so that one device run says where a mismatch comes from."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu_check  # noqa: E402


def test_levers_off_names_the_lever():
    seen = []

    def check():  # mismatches only while phases are on
        seen.append(os.environ.get("NC_PHASE_MAX"))
        ok = os.environ.get("NC_PHASE_MAX") == "0"
        return {"ok": ok, "probe_diff": 0.0 if ok else 0.5}

    before = os.environ.get("NC_PHASE_MAX")
    out = gpu_check.levers_off(check)
    assert out == {"phases off": "ok", "fusion off": "FAIL 0.5"}
    assert seen == ["0", before]
    assert os.environ.get("NC_PHASE_MAX") == before


def test_levers_off_reports_errors():
    def check():
        raise RuntimeError("device lost")

    out = gpu_check.levers_off(check)
    assert set(out) == {label for label, _ in gpu_check.LEVERS_OFF}
    assert all(v == "RuntimeError: device lost" for v in out.values())
