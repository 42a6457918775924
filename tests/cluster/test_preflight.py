"""Preflight checks: addresses, resources, storage -- on real sockets and filesystems."""

import os
import socket
import subprocess

import pytest

from medflip.sweep.preflight import (
    PreflightError,
    check_storage,
    connect_error,
    resolve_address,
)


def test_local_address_means_start_ray_here(monkeypatch):
    from medflip.sweep import raycompat

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert resolve_address("local") is None
    if raycompat.recorded_address() is None:  # no `ray start` recorded on this machine
        assert resolve_address(None) is None
    else:  # one is: Ray would join it, so the sweep says to pass --address auto
        with pytest.raises(PreflightError, match="pass --address auto"):
            resolve_address(None)


def test_address_that_nobody_answers_says_how_to_start_a_cluster():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PreflightError, match="nothing answers") as err:
        resolve_address(f"127.0.0.1:{port}", timeout_s=1.0)
    assert "make cluster-up" in str(err.value) and "ray start --head" in str(err.value)
    assert "--address auto" not in str(err.value)  # it was given a host:port, not auto
    with pytest.raises(PreflightError, match="HOST:PORT"):
        resolve_address("my-head-node")


def test_address_that_answers_passes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"127.0.0.1:{s.getsockname()[1]}"
        assert resolve_address(address) == address


def test_storage_probed_and_left_as_it_was(tmp_path):
    target = tmp_path / "runs" / "deeper"
    assert check_storage(str(target), min_free_mb=1) == str(target)
    assert list(tmp_path.iterdir()) == []  # probe and the directories it needed are gone
    target.mkdir(parents=True)
    (target / "old-sweep").mkdir()
    assert check_storage(str(target), min_free_mb=1) == str(target)
    assert [p.name for p in target.iterdir()] == ["old-sweep"]  # existing things stay


def test_storage_under_a_file_is_rejected_and_nothing_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(PreflightError, match="not writable") as err:
        check_storage(str(blocker / "runs"))
    assert str(blocker / "runs") in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_storage_uri_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(PreflightError, match="URIs are not supported.*mount the bucket"):
        check_storage(f"file://{tmp_path}/runs")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (root with mount rights only); yields a mount helper."""
    mounted = []

    def mount(size: str, readonly: bool = False):
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        opts = f"size={size}" + (",ro" if readonly else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root with "
                "CAP_SYS_ADMIN; the not-writable case is also covered by test above"
            )
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_read_only_storage_is_rejected(tmpfs):
    point = tmpfs("1g", readonly=True)  # tmpfs takes memory only as it fills
    with pytest.raises(PreflightError, match="not writable .*Read-only file system"):
        check_storage(str(point / "runs"))


def test_full_storage_is_rejected(tmpfs):
    point = tmpfs("2m")
    # little free space: the free-space floor catches it
    with pytest.raises(PreflightError, match=r"only 2\.0 MiB free.*at least 256 MiB"):
        check_storage(str(point))
    # no free space at all: the fsynced probe write itself fails
    with open(point / "filler", "wb") as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
            os.fsync(f.fileno())
    with pytest.raises(PreflightError, match="No space left on device"):
        check_storage(str(point), min_free_mb=0)
    assert sorted(p.name for p in point.iterdir()) == ["filler"]


def test_connect_error_tells_a_token_problem_from_a_missing_cluster():
    from ray.exceptions import AuthenticationError

    def chained(inner):
        try:
            try:
                raise inner
            except Exception as e:
                raise ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379") from e
        except ConnectionError as exc:
            return exc

    token = connect_error(
        "auto",
        chained(
            AuthenticationError(
                "RPC error: InvalidAuthToken: Authentication token is missing or incorrect"
            )
        ),
    )
    assert "rejected this driver's authentication token" in str(token)
    assert "RAY_AUTH_MODE=token" in str(token) and "ray get-auth-token" in str(token)
    other = connect_error("10.0.0.1:6379", chained(TimeoutError("deadline exceeded")))
    assert "could not join" in str(other) and "make cluster-up" in str(other)


def test_dry_run_refuses_the_storage_the_real_run_refuses(tmp_path, capsys):
    from medflip.sweep import launch

    assert launch.main("mask_ratio", ["--dry-run", "--storage", "s3://bucket/runs"]) == 2
    assert "--storage s3://bucket/runs: URIs are not supported" in capsys.readouterr().err
    storage = tmp_path / "new" / "runs"
    assert launch.main("mask_ratio", ["--dry-run", "--storage", str(storage)]) == 0
    assert not (tmp_path / "new").exists()  # the probe left nothing behind


def test_no_address_where_ray_would_join_a_cluster_says_pass_address_auto(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    with pytest.raises(PreflightError) as err:
        resolve_address(None)
    message = str(err.value)
    assert "\n" not in message and "pass --address auto" in message
    assert "127.0.0.1:6379" in message and "RAY_ADDRESS" in message
    assert resolve_address("local") is None  # an explicit local Ray is still possible
