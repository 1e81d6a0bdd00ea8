"""Child processes of the CLI (the demo's servers, the benchmarks' servers): stopped the one way.

    from carscope.common.subprocs import stop_process; stop_process(proc)
"""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM (our servers shut down cleanly on it), then SIGKILL if it lingers past `grace_s`; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
