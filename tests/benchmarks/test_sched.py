"""The router benchmark's autogroup switch: off for the run, the host's setting back after."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.router.sched import autogroups


def setting(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "sched_autogroup_enabled"
    path.write_text(value + "\n")
    return path


def test_switched_off_during_the_run_and_restored(tmp_path: Path) -> None:
    path = setting(tmp_path, "1")
    with autogroups(turn_off=True, path=path) as line:
        assert path.read_text() == "0"
        assert "off for this run" in line
    assert path.read_text() == "1"


def test_restored_when_the_run_fails(tmp_path: Path) -> None:
    path = setting(tmp_path, "1")
    with pytest.raises(RuntimeError), autogroups(turn_off=True, path=path):
        raise RuntimeError("wrk missing")
    assert path.read_text() == "1"


def test_kept_when_asked(tmp_path: Path) -> None:
    path = setting(tmp_path, "1")
    with autogroups(turn_off=False, path=path) as line:
        assert path.read_text().strip() == "1"
        assert "--keep-autogroups" in line


def test_host_without_autogroups_left_alone(tmp_path: Path) -> None:
    path = setting(tmp_path, "0")
    with autogroups(turn_off=True, path=path) as line:
        assert "the host's setting" in line
    assert path.read_text().strip() == "0"
    with autogroups(turn_off=True, path=tmp_path / "absent") as line:
        assert "not in this kernel" in line


class ReadOnly(type(Path())):  # type: ignore[misc]
    """A setting that refuses writes, as /proc does for a user that is not root."""

    def write_text(self, *args, **kwargs) -> int:
        raise PermissionError(13, "Permission denied")


def test_a_setting_it_cannot_write_is_reported(tmp_path: Path) -> None:
    path = ReadOnly(setting(tmp_path, "1"))
    with autogroups(turn_off=True, path=path) as line:
        assert "could not switch them off (Permission denied" in line
    assert path.read_text().strip() == "1"
