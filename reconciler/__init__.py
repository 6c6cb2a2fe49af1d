"""llmgw: a GitOps reconciler for the Genesys Cloud LLM Gateway.

Reads YAML manifests, validates them offline, reads the live org over its REST API, plans the
difference as ordered atomic requests, applies it safely, and reports drift.
"""

from __future__ import annotations

__version__ = "0.1.0"
