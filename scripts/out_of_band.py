"""A change made behind llmgw's back, for the demo: someone edits a prompt in the org directly.

Usage: python scripts/out_of_band.py PROMPT_NAME FIELD VALUE (VALUE is JSON). Uses the same
GENESYS_CLOUD_* environment variables as llmgw and talks plain HTTP to the API.
"""

from __future__ import annotations

import json
import os
import sys

import httpx


def main() -> int:
    name, field, value = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    api = os.environ["GENESYS_CLOUD_API_URL"].rstrip("/")
    login = os.environ.get("GENESYS_CLOUD_LOGIN_URL", api).rstrip("/")
    auth = (os.environ["GENESYS_CLOUD_CLIENT_ID"], os.environ["GENESYS_CLOUD_CLIENT_SECRET"])
    with httpx.Client(timeout=10) as http:
        token = http.post(
            f"{login}/oauth/token", data={"grant_type": "client_credentials"}, auth=auth
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        page = http.get(
            f"{api}/api/v2/ai/llm/gateway/prompts", params={"pageSize": 100}, headers=headers
        ).json()
        prompt = next(p for p in page["entities"] if p["name"] == name)
        resp = http.put(
            f"{api}/api/v2/ai/llm/gateway/prompts/{prompt['id']}",
            json={field: value},
            headers=headers,
        )
        resp.raise_for_status()
    print(f"out of band: set {field} of prompt {name} to {json.dumps(value)} in the org")
    return 0


if __name__ == "__main__":
    sys.exit(main())
