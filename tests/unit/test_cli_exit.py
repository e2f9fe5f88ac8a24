"""How the ``kplan`` process ends: its work done, without taking the interpreter apart."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from kplan.cli.main import _end

SCRIPT = textwrap.dedent(
    """
    import atexit, sys
    from kplan.cli.main import main

    class TornDown:
        def __del__(self):
            print("interpreter taken apart", flush=True)

    kept = TornDown()  # freed only when the interpreter is taken apart
    atexit.register(lambda: print("exit handler ran"))
    sys.stdout.write("output not yet flushed, ")
    main(sys.argv[1:])
    """
)


def _kplan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=60
    )


def test_a_command_ends_at_once_with_its_code_output_and_exit_handlers() -> None:
    ok = _kplan("version")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("output not yet flushed, kplan v")
    assert ok.stdout.endswith("exit handler ran\n")
    assert "interpreter taken apart" not in ok.stdout
    bad = _kplan("no-such-command")
    assert bad.returncode == 1
    assert "No such command 'no-such-command'" in bad.stderr
    assert bad.stdout.endswith("exit handler ran\n")


def test_a_thread_still_running_is_waited_for_the_ordinary_way() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        with pytest.raises(SystemExit) as ended:
            _end(3)
    finally:
        release.set()
        worker.join()
    assert ended.value.code == 3
