"""Organisation policies as code: CEL rule packs checked by ``validate`` and ``plan``.

- ``pack``: loading ``kind: PolicySet`` files, compiling and statically checking every rule;
- ``syntax`` and ``check``: llmgw's own parser and checker of CEL against the kinds' schemas;
- ``engine``: judging documents, exceptions and their expiry;
- ``selftest``: the packs' own ``tests:`` (``llmgw policy test``).

The CEL library itself is behind ``reconciler.cel``. Nothing here talks to the gateway.
"""
