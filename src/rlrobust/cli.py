"""The ``rlrobust`` entry point; each command lives in its own module under ``commands/``."""

from __future__ import annotations

from rlrobust.commands import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
