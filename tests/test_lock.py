"""The run directory's lock: one writer, a second one told who holds it, a dead holder never blocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from fewforge.lock import RunInUseError, RunLock


def test_a_second_writer_is_told_who_holds_the_lock(tmp_path):
    with RunLock(tmp_path / "run", "fewforge run grid.yaml"):
        holder = json.loads((tmp_path / "run" / ".lock").read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == "fewforge run grid.yaml"
        with pytest.raises(RunInUseError) as caught:  # a second open file: flock conflicts within a process too
            RunLock(tmp_path / "run", "fewforge generate").acquire()
        assert f"is in use by pid {os.getpid()} (fewforge run grid.yaml), running since" in caught.value.message
        assert "another --output" in caught.value.hint
    with RunLock(tmp_path / "run"):  # released: the next writer gets it
        pass
    assert (tmp_path / "run" / ".lock").read_text() == ""  # nobody holds it, nobody is named


def test_the_lock_of_a_killed_process_never_blocks(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        from fewforge.lock import RunLock
        RunLock({str(tmp_path / 'run')!r}, "fewforge run (killed)").acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads((tmp_path / "run" / ".lock").read_text())["command"] == "fewforge run (killed)"
    with RunLock(tmp_path / "run", "fewforge run (next)"):  # no timeout, no manual cleanup
        assert json.loads((tmp_path / "run" / ".lock").read_text())["command"] == "fewforge run (next)"
