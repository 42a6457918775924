"""Each trial's output where people look: `<experiment>/<trial_id>/worker-<rank>.log`.

A Ray Train worker's stdout and stderr otherwise live only in Ray's session folder (under
its temp dir) and the dashboard, both gone with a local Ray. `tee_output` copies the
worker process's file descriptors 1 and 2 -- Python's prints, logging, warnings,
tracebacks and C++ lines alike -- into the trial's log while they still reach Ray's own
files (and the driver, with `--verbose`). A worker process runs one trial (Ray Train
starts a worker group per run), so the copy lasts the process.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback

LOG_NAME = "worker-{rank}.log"


def log_path(experiment_dir: str, trial_id: str, rank: int) -> str:
    """Beside Tune's own trial files (params.json, result.json, error.txt)."""
    return os.path.join(experiment_dir, trial_id, LOG_NAME.format(rank=rank))


def _pump(read_fd: int, original_fd: int, log) -> None:
    while True:
        chunk = os.read(read_fd, 65536)
        if not chunk:
            return
        os.write(original_fd, chunk)
        log.write(chunk)


def tee_output(path: str) -> None:
    """From now on, everything this process writes to fd 1 and 2 is appended to `path`
    too (a restarted attempt appends after the failed one's lines)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    log = open(path, "ab", buffering=0)  # open for the rest of the process
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        stream.flush()
        original = os.dup(fd)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, fd)
        os.close(write_fd)
        threading.Thread(target=_pump, args=(read_fd, original, log), daemon=True).start()


def print_failure(rank: int) -> None:
    """The traceback of the exception being handled, into the log (Ray Train sends it to
    the controller; this keeps it with the trial's own output)."""
    print(f"[medflip] rank {rank} failed:", file=sys.stderr)
    traceback.print_exc()
    sys.stderr.flush()
