"""The benchmark runs: bench/run.py --tiny against a private Postfix.

This proves that `make bench` works end to end (both MTAs start, carry mail,
are measured, and the report and chart are written). It asserts no timing:
the figures themselves are for bench/results/, not for the test suite.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RATE = r"\d+(?:\.\d+)?(?:e[+-]\d+)?"


def test_tiny_benchmark_writes_a_full_report(tmp_path):
    if not os.path.exists("/usr/sbin/smtp-source") or not os.path.exists("/usr/sbin/postfix"):
        pytest.skip("Postfix is not installed (scripts/deps test installs it)")
    if os.geteuid() != 0:
        pytest.skip("the benchmark runs its Postfix instance as root")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--tiny", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    reports = sorted(tmp_path.glob("*.md"))
    assert len(reports) == 1
    text = reports[0].read_text()
    assert "Durability" in text and "Disk limit" in text
    # Every workload has a measured Kite/Postfix ratio for its end-to-end rate,
    # so every message reached the sink or the Maildir for both MTAs.
    for workload in ("relay 1024B", "local 1024B", "connrate 512B"):
        m = re.search(rf"^\| {workload} \| end-to-end msg/s \| ({RATE}) .*\| ({RATE}) \[[^|]*\| "
                      rf"(\d+\.\d\d) \[", text, re.M)
        assert m, f"no measured end-to-end row for {workload}:\n{text}"
        assert float(m.group(1)) > 0 and float(m.group(2)) > 0
        assert re.search(rf"^\| {workload} \| CPU s per 1000 msgs \| {RATE}", text, re.M), text
    assert re.search(r"^\| 20 idle sessions \| memory bytes \(all processes\) \| \d+ \| \d+ \| \d", text, re.M), text
    # The commands that produced the load are listed for anyone to rerun.
    assert "/usr/sbin/smtp-source -d -s 2 -m 20" in text
    if shutil.which("gnuplot"):
        chart = reports[0].with_suffix(".png")
        assert chart.exists() and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
