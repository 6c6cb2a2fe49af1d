"""`python -m reconciler` runs the same command line as the `llmgw` console script."""

from __future__ import annotations

from reconciler.cli import main

if __name__ == "__main__":
    main()
