import ctypes.util
import subprocess
import sys

import pytest

from mp3fix import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux") or ctypes.util.find_library("c") is None,
                    reason="mallopt is glibc's")
def test_tune_allocator_applies_once_in_a_fresh_process() -> None:
    code = ("from mp3fix import allocator; import sys; "
            "a = allocator.tune_allocator(); b = allocator.tune_allocator(); "
            "sys.exit(0 if (a, b, allocator._done) == (True, True, True) else 1)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_importing_mp3fix_does_not_tune_the_allocator() -> None:
    code = "import mp3fix, mp3fix.restore, mp3fix.cli, mp3fix.allocator as a, sys; sys.exit(1 if a._done else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_tune_allocator_is_a_no_op_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_done", False)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocator.tune_allocator() is False
    assert allocator._done is False
