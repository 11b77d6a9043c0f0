"""An application module that tunes the garbage collector itself at import."""

from __future__ import annotations

import gc

gc.set_threshold(1234, 5, 5)
