"""The garbage collector of a long-lived server process.

CPython's cyclic collector runs a young-generation pass every 700 container allocations
and, every so often, a full pass over every object of the process. A server allocates
fast (a batch of 100 device messages is thousands of dicts and lists) over a heap that
is mostly its own code and parts, never garbage: the full passes walk all of it, and
showed as milliseconds inside whichever call allocated at the time (the JSON decoding of
request bodies, in profiles of the ingest path).

So, once a server is built: what exists then is moved out of the collector's sight
(`gc.freeze`, as CPython's documentation suggests for long-lived processes), and the
young generation is collected every 50,000 allocations instead of 700. Reference
counting still frees nearly everything at once; only cycles wait a little longer.
Measured in `docs/benchmarks.md` (ingest CPU per request).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # container allocations between two young-generation passes
OLDER_THRESHOLDS = (50, 100)  # young passes per middle pass, middle passes per full one


def tune_for_server() -> None:
    """Freeze what the process holds now and collect young objects less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
