"""A local emulator of the Genesys Cloud LLM Gateway API (``shared/contract.md``).

For demos, end-to-end tests and users' own CI: the same application runs as a real HTTP server
on loopback (``server``) and in-process under an httpx transport (``transport``). ``state`` is
the pure state machine, ``app`` the HTTP layer (OAuth, scopes, rate limits, idempotency, faults).
Nothing here is imported by the reconciler's core; the emulator is a separate server.
"""
