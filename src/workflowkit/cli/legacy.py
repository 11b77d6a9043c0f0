"""Old spellings of command-line arguments, rewritten to today's with a warning.

- ``--run RUN_ID`` (``inspect steps|events|sleeps|streams|hooks``): the run id is now a
  positional argument, as in every other command.
- ``resume-hook TOKEN --json PAYLOAD``: the payload is now ``--payload``; ``--json`` is the
  output switch, as in every other command.
"""

from __future__ import annotations

from collections.abc import Sequence


def modernise(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` in today's spelling, and a deprecation warning for each old one found."""
    words = list(argv)
    warnings: list[str] = []
    out: list[str] = []
    resume = "resume-hook" in words
    has_payload = any(w == "--payload" or w.startswith("--payload=") for w in words)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--run" and i + 1 < len(words):
            out.append(words[i + 1])
            warnings.append("--run RUN_ID is deprecated: give the run id as an argument")
            i += 2
            continue
        if word.startswith("--run="):
            out.append(word.removeprefix("--run="))
            warnings.append("--run RUN_ID is deprecated: give the run id as an argument")
            i += 1
            continue
        old_payload = resume and not has_payload and word == "--json" and i + 1 < len(words)
        if old_payload:
            out += ["--payload", words[i + 1]]
            warnings.append("resume-hook --json PAYLOAD is deprecated: use --payload PAYLOAD")
            i += 2
            continue
        out.append(word)
        i += 1
    return out, warnings
