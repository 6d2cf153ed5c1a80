"""Where the time goes in a py-spy profile of collapsed stacks (`ingest.py --profile`).

    .venv/bin/python bench/profile_summary.py PROFILE.txt [--top 25] [--match vsense/]

Prints the share of samples by function on top of the stack (self) and by function
anywhere on it (inclusive). Only the main thread's stacks count (and the idle process,
shown as the process alone): py-spy also reports each parked SQLAlchemy greenlet (a
request waiting for the database) as a stack of its own, which is waiting, not work.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
FRAME = re.compile(r"^(?P<function>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """`function (path/to/module.py:12)` as `module.py:function`, the package kept for
    vsense's own modules."""
    found = FRAME.match(frame.strip())
    if not found:
        return frame.strip()
    path = found["file"]
    if "vsense/" in path:
        path = "vsense/" + path.split("vsense/", 1)[1]
    else:
        path = path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1] if "/" in path else path
    return f"{path}:{found['function']}"


def summarize(path: Path, top: int, match: str | None) -> list[str]:
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        found = LINE.match(line)
        if not found:
            continue
        count = int(found["count"])
        raw = [f for f in found["stack"].split(";") if f]
        if len(raw) > 1 and "<module>" not in raw[1]:
            continue  # a parked greenlet, not the thread
        frames = [frame_name(f) for f in raw]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    out = [f"{path.name}: {total:,} samples"]
    for title, counter in (("self", own), ("inclusive", anywhere)):
        out.append(f"-- {title}")
        shown = 0
        for name, count in counter.most_common():
            if match and match not in name:
                continue
            out.append(f"{100 * count / total:6.1f} %  {name}")
            shown += 1
            if shown >= top:
                break
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="only functions whose name contains this")
    args = parser.parse_args(argv)
    for path in args.profiles:
        print("\n".join(summarize(path, args.top, args.match)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
