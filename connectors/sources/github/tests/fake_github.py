"""A local server answering like GitHub's REST API for one repository (docs.github.com/rest).

- `GET /repos/{owner}/{repo}/issues|pulls|commits` with `per_page` (default 30, at most
  100) and `page`; the `Link` header names the `next`, `last`, `first` and `prev` pages
  by absolute URL. `issues` lists pull requests too (they have a `pull_request` key) and
  takes `state`, `sort`, `direction` and `since` (updated at or after); `pulls` takes
  `state`, `sort` and `direction` but no `since`; `commits`, newest first, takes `since`
  and `until`.
- Every answer has the `x-ratelimit-*` headers. `Authorization: Bearer|token <token>`
  is checked when given (public repositories need none): a wrong one is 401
  `{"message": "Bad credentials", ...}`; an unknown repository 404 `Not Found`.
- `rate_limit(kind)` makes the next request answer as GitHub's limits do: `secondary`
  403 with `retry-after`, `primary` 403 with `x-ratelimit-remaining: 0` and
  `x-ratelimit-reset` (epoch seconds).
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

from bizon_core.testing.server import LocalServer, QuietHandler

OWNER, REPO, TOKEN = "acme", "rockets", "ghp_fakeT0ken1234"
DOCS = "https://docs.github.com/rest"
START = datetime(2026, 1, 1, tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def repository(issues: int = 250, commits: int = 120) -> dict[str, list[dict]]:
    """Issues (each even number a pull request, updated in an order of its own) and commits."""
    items, pulls = [], []
    for n in range(1, issues + 1):
        updated = _iso(START + timedelta(hours=(n * 37) % issues))
        item = {"id": 10_000 + n, "number": n, "title": f"#{n}", "updated_at": updated}
        item |= {"state": "open" if n % 3 else "closed", "created_at": _iso(START)}
        if n % 2 == 0:
            item["pull_request"] = {"url": f"https://api.github.com/repos/{OWNER}/{REPO}/pulls/{n}"}
            pulls.append({**item, "id": 90_000 + n, "head": {"ref": f"branch-{n}"}})
            del pulls[-1]["pull_request"]
        items.append(item)
    history = [
        {
            "sha": f"{n:040x}",
            "commit": {
                "message": f"change {n}",
                "author": {"name": "Ada", "date": _iso(START + timedelta(hours=n))},
                "committer": {
                    "name": "GitHub",
                    "date": _iso(START + timedelta(hours=n, minutes=5)),
                },
            },
        }
        for n in range(commits, 0, -1)
    ]
    return {"issues": items, "pulls": pulls, "commits": history}


class _Handler(QuietHandler):
    server: FakeGithub

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        self.server.requests.append((url.path, query, dict(self.headers)))
        limits = {"x-ratelimit-limit": "5000", "x-ratelimit-resource": "core"}
        limits |= {"x-ratelimit-remaining": "4999", "x-ratelimit-used": "1"}
        limits["x-ratelimit-reset"] = str(int(time.time()) + 3600)
        limited = self.server.limits.pop(0) if self.server.limits else None
        if limited == "secondary":
            message = "You have exceeded a secondary rate limit. Please wait a few minutes."
            return self._error(403, message, {**limits, "retry-after": "1"})
        if limited == "primary":
            limits |= {"x-ratelimit-remaining": "0", "x-ratelimit-used": "5000"}
            limits["x-ratelimit-reset"] = str(math.ceil(time.time()) + 1)
            return self._error(403, "API rate limit exceeded for user ID 1.", limits)
        auth = self.headers.get("Authorization")
        if auth is not None and auth not in (f"Bearer {TOKEN}", f"token {TOKEN}"):
            return self._error(401, "Bad credentials", limits)
        owner, repo, kind = [*url.path.strip("/").split("/"), "", "", ""][1:4]
        if (owner, repo) != (OWNER, REPO) or kind not in self.server.data:
            return self._error(404, "Not Found", limits)
        items = self._select(kind, query)
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        body = items[(page - 1) * per_page : page * per_page]
        self.send_answer(
            200,
            json.dumps(body).encode(),
            {**self._json, **limits} | self._links(url, query, page, last),
        )

    _json = {"Content-Type": "application/json; charset=utf-8"}

    def _select(self, kind: str, query: dict[str, str]) -> list[dict]:
        items = list(self.server.data[kind])
        if kind == "commits":
            since, until = query.get("since"), query.get("until")
            return [
                c
                for c in items
                if (not since or c["commit"]["committer"]["date"] >= since)
                and (not until or c["commit"]["committer"]["date"] <= until)
            ]
        if query.get("state", "open") != "all":
            items = [i for i in items if i["state"] == query.get("state", "open")]
        if kind == "issues" and query.get("since"):
            items = [i for i in items if i["updated_at"] >= query["since"]]
        key = "updated_at" if query.get("sort") == "updated" else "created_at"
        descending = query.get("direction", "desc" if key == "created_at" else "asc") == "desc"
        return sorted(items, key=lambda i: (i[key], i["number"]), reverse=descending)

    def _links(self, url, query: dict[str, str], page: int, last: int) -> dict[str, str]:
        def link(number: int, rel: str) -> str:
            target = f"{self.server.url}{url.path}?{urlencode({**query, 'page': number})}"
            return f'<{target}>; rel="{rel}"'

        links = [link(page + 1, "next"), link(last, "last")] if page < last else []
        links += [link(page - 1, "prev"), link(1, "first")] if page > 1 else []
        return {"Link": ", ".join(links)} if links else {}

    def _error(self, status: int, message: str, headers: dict[str, str]) -> None:
        body = {"message": message, "documentation_url": DOCS, "status": str(status)}
        self.send_answer(status, json.dumps(body).encode(), {**self._json, **headers})


class FakeGithub(LocalServer):
    def __init__(self, **sizes: int) -> None:
        super().__init__(_Handler)
        self.data = repository(**sizes)
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.limits: list[str] = []

    def rate_limit(self, kind: str) -> None:
        """The next request answers GitHub's `primary` or `secondary` rate limit."""
        self.limits.append(kind)
