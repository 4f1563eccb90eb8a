"""Kill a fine-tune hard in the middle: the resume tests' common step."""
import json
import signal
import subprocess
import sys
import time


def kill_after_steps(code: str, out_dir, steps: int, timeout: float = 120) -> None:
    """Run ``code`` in a fresh Python, wait until ``out_dir/history.json`` records ``steps`` training steps (or the
    child ends, or ``timeout`` s pass), then SIGKILL it: no chance to save anything."""
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + timeout
    history = out_dir / "history.json"
    while time.time() < deadline and child.poll() is None:
        if history.exists() and len(json.loads(history.read_text())["train"]) >= steps:
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
