"""What every reproduction script shares: timestamped progress on stderr, and mean ± sd over seeds."""

from __future__ import annotations

import sys
import time

from wmproof.stats import mean_sd  # noqa: F401  (the one definition; the scripts import it from here)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
