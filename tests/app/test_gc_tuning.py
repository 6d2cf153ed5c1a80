"""A served process tunes its garbage collector once it is built (in a process of its
own here: the test process keeps the defaults)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from vsense.app import served_app
from vsense.kit.gc_tuning import YOUNG_THRESHOLD
assert gc.get_freeze_count() == 0 and gc.get_threshold()[0] != YOUNG_THRESHOLD
app = served_app()
assert app.title == "vsense"
assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()
assert gc.get_threshold()[0] == YOUNG_THRESHOLD, gc.get_threshold()
print("tuned")
"""


def test_a_served_app_freezes_its_startup_objects_and_collects_young_ones_less_often(
    tmp_path: object,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={"VSENSE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "tuned"
