"""The baseline: a bare fetch-parse-write loop with the HTTP client bizon uses.

python benchmarks/bare_loop.py http://127.0.0.1:PORT out.jsonl
"""

from __future__ import annotations

import sys

import orjson
import requests


def main(base_url: str, output: str) -> int:
    records = 0
    page: int | None = 0
    with requests.Session() as session, open(output, "wb") as out:
        while page is not None:
            response = session.get(f"{base_url}/bench", params={"page": page})
            response.raise_for_status()
            data = orjson.loads(response.content)
            out.write(
                b"".join(
                    orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE) for item in data["items"]
                )
            )
            records += len(data["items"])
            page = data["next_page"]
    print(records)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
