"""examples/python/shared_weights.py runs: a server and two workers over frozen weights."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_shared_weights_example():
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples/python/shared_weights.py"),
         "--workers", "2", "--mib", "16"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(summary["workers"]) == 2
    for worker in summary["workers"]:
        # Each worker maps the server's pages: it adds far less than a private copy.
        assert worker["added"] < summary["weights"] // 2, done.stdout
    assert "matches the server's" in done.stdout
