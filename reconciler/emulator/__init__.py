"""A local emulator of the Genesys Cloud LLM Gateway API (``docs/contract.md``).

There is no public sandbox of the gateway, so demos, the end-to-end tests and users' own CI run
against this. The same application serves a real loopback HTTP server (``server``) and an
in-process httpx transport (``transport``). ``state`` is the pure state machine (the gateway's
objects and rules, one module per section of the contract behind the ``Gateway`` facade),
``app`` the HTTP layer (OAuth, scopes, rate limits, idempotency, faults),
``config`` the settings and the parsing of the CLI's values. Every path, field, header and scope
comes from ``reconciler.endpoints``. The reconciler's core never imports this package.
"""
