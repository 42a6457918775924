"""A trial's output where people look: the worker's fds 1 and 2 copied into
`<experiment>/<trial>/worker-<rank>.log` (Python, C-level writes and the traceback of a
failure), still reaching the original streams; the sweep's end names the files."""

from __future__ import annotations

import subprocess
import sys

from medflip.sweep import trial_logs

WORKER = """
import logging, os, sys, time
from medflip.sweep import trial_logs
logging.basicConfig(level=logging.INFO)  # a handler bound to stderr before the tee
trial_logs.tee_output(sys.argv[1])
print("python stdout line", flush=True)
logging.getLogger("medflip").info("logging line")
os.write(2, b"c-level stderr line\\n")
try:
    raise RuntimeError("MEDFLIP_FAULT: injected crash at step 3 on rank 0")
except RuntimeError:
    trial_logs.print_failure(0)
time.sleep(0.5)  # the copying threads drain the pipes
"""


def test_worker_output_is_copied_into_the_trial_dir(tmp_path):
    path = trial_logs.log_path(str(tmp_path / "exp"), "abc_00001", 0)
    assert path == str(tmp_path / "exp" / "abc_00001" / "worker-0.log")
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, path], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    log = open(path).read()
    for line in ("python stdout line", "logging line", "c-level stderr line"):
        assert line in log
    assert "Traceback (most recent call last)" in log and "injected crash at step 3" in log
    # the original streams still get everything (Ray's own log files, the driver)
    assert "python stdout line" in proc.stdout and "c-level stderr line" in proc.stderr
    assert "injected crash" in proc.stderr

    again = subprocess.run([sys.executable, "-c", WORKER, path], capture_output=True, timeout=60)
    assert again.returncode == 0
    assert open(path).read().count("python stdout line") == 2  # a restart appends
