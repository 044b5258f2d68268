"""What each `--auth` and `--pagination` choice fills into the templates."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaginationChoice:
    paginator_class: str
    paginator: str
    records_path: str | None
    params: dict[str, int]
    #: The local fake API's route prefix that pages this way.
    style: str
    text: str


PAGINATIONS = {
    "cursor": PaginationChoice(
        "CursorPaginator",
        'CursorPaginator(cursor_path="next_cursor", param="cursor")',
        "items",
        {"limit": 50},
        "cursor",
        "a cursor in the body (`next_cursor`), sent back as `?cursor=`",
    ),
    "offset": PaginationChoice(
        "OffsetPaginator",
        'OffsetPaginator(limit=50, total_path="total")',
        "items",
        {},
        "offset",
        "`?offset=&limit=`, until a short page or the body's `total`",
    ),
    "page": PaginationChoice(
        "PageNumberPaginator",
        'PageNumberPaginator(page_size=50, total_pages_path="total_pages")',
        "items",
        {},
        "page",
        "`?page=&per_page=`, until a short page or the body's `total_pages`",
    ),
    "next_url": PaginationChoice(
        "NextUrlPaginator",
        'NextUrlPaginator(next_url_path="next")',
        "items",
        {"limit": 50},
        "next_url",
        "the next page's URL in the body (`next`)",
    ),
    "link_header": PaginationChoice(
        "LinkHeaderPaginator",
        "LinkHeaderPaginator()",
        None,
        {"per_page": 50},
        "link",
        'the next page\'s URL in the `Link` header (`rel="next"`); the body is the list',
    ),
}


@dataclass(frozen=True)
class AuthChoice:
    #: The `authentication:` block of the example config, `{env}` the variables' prefix.
    example: str
    #: Keyword arguments of the test's `FakeApiServer`, after `api`.
    server: str
    #: The test's `"authentication": ...` entry (empty: none).
    test: str
    text: str
    #: Lines of the test module after `SECRET = ...`.
    test_header: str = ""


_INDENT = "\n" + " " * 16

AUTHS = {
    "none": AuthChoice("", "", "", "none"),
    "api_key": AuthChoice(
        "\n  authentication:\n    type: api_key\n    params:\n      token: env://{env}_API_KEY"
        '\n      auth_header: X-API-Key\n      auth_method: ""',
        ', required_headers={"X-API-Key": SECRET}',
        _INDENT
        + '"authentication": {'
        + _INDENT
        + '    "type": "api_key",'
        + _INDENT
        + '    "params": {'
        + _INDENT
        + '        "token": SECRET,'
        + _INDENT
        + '        "auth_header": "X-API-Key",'
        + _INDENT
        + '        "auth_method": "",'
        + _INDENT
        + "    },"
        + _INDENT
        + "},",
        "an API key in the `X-API-Key` header",
    ),
    "bearer": AuthChoice(
        "\n  authentication:\n    type: bearer\n    params:\n      token: env://{env}_TOKEN",
        ', required_headers={"Authorization": BEARER}',
        _INDENT + '"authentication": {"type": "bearer", "params": {"token": SECRET}},',
        "a bearer token (`Authorization: Bearer <token>`)",
        '\nBEARER = f"Bearer {SECRET}"',
    ),
    "basic": AuthChoice(
        "\n  authentication:\n    type: basic\n    params:\n      username: env://{env}_USERNAME"
        "\n      password: env://{env}_PASSWORD",
        ', required_headers={"Authorization": BASIC}',
        _INDENT
        + '"authentication": {'
        + _INDENT
        + '    "type": "basic",'
        + _INDENT
        + '    "params": {"username": "me", "password": SECRET},'
        + _INDENT
        + "},",
        "HTTP basic (username and password)",
        '\nBASIC = "Basic " + base64.b64encode(f"me:{SECRET}".encode()).decode()',
    ),
    "oauth": AuthChoice(
        "\n  authentication:\n    type: oauth\n    params:"
        "\n      token_refresh_endpoint: https://api.{name}.example/oauth/token  # TODO"
        "\n      grant_type: client_credentials"
        "\n      client_id: env://{env}_CLIENT_ID\n      client_secret: env://{env}_CLIENT_SECRET",
        ", require_oauth=True, client_secret=SECRET",
        _INDENT
        + '"authentication": {'
        + _INDENT
        + '    "type": "oauth",'
        + _INDENT
        + '    "params": {'
        + _INDENT
        + '        "token_refresh_endpoint": f"{server.url}/oauth/token",'
        + _INDENT
        + '        "grant_type": "client_credentials",'
        + _INDENT
        + '        "client_id": "client-id",'
        + _INDENT
        + '        "client_secret": SECRET,'
        + _INDENT
        + "    },"
        + _INDENT
        + "},",
        "OAuth2 client credentials, the token from the API's token endpoint",
    ),
}
