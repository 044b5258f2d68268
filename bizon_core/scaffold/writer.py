"""`bizon new source`: check the name, render the templates, write the connector's folder."""

from __future__ import annotations

import keyword
import re
from importlib.resources import files
from pathlib import Path
from string import Template

from bizon_core.discovery import ConnectorKind, builtin_connectors_dir, discover
from bizon_core.errors import ConfigError
from bizon_core.scaffold.choices import AUTHS, PAGINATIONS
from bizon_core.schema import committed_schema_path, schema_text

_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: The pipeline schema, from a built-in connector's config folder.
_SCHEMA = "../../../../schema/pipeline.schema.json"


def check_name(name: str) -> None:
    """Refuse a name that is no lowercase identifier, or that a source already has."""
    if not _NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"source name '{name}': use lowercase letters, digits and underscores, starting "
            "with a letter, and not a Python keyword (e.g. acme or acme_crm)"
        )
    existing = discover(ConnectorKind.SOURCE).get(name)
    if existing is not None:
        raise ConfigError(
            f"source name '{name}': a source of that name exists in {existing.path.parents[1]}"
        )


def render(name: str, auth: str, pagination: str) -> dict[str, str]:
    """The connector's files, by path relative to its folder."""
    paging, authentication = PAGINATIONS[pagination], AUTHS[auth]
    env = name.upper()
    context = {
        "name": name,
        "title": name.replace("_", " ").title(),
        "class_name": name.title().replace("_", ""),
        "stream_names": "users and orders",
        "paginator_class": paging.paginator_class,
        "paginator": paging.paginator,
        "records_path": repr(paging.records_path).replace("'", '"'),
        "params": repr(paging.params).replace("'", '"'),
        "style": paging.style,
        "pagination_text": paging.text,
        "authentication": authentication.example.format(env=env, name=name),
        "server_auth": authentication.server,
        "test_authentication": authentication.test,
        "auth_text": authentication.text,
        "tests_path": f"tests/test_{name}_contract.py",
    }
    test = _template("test.py").substitute(context)
    if "base64" in authentication.test_header:
        test = test.replace("import pytest\n", "import base64\n\nimport pytest\n", 1)
    if authentication.test_header:
        test = test.replace(
            'SECRET = "test-secret"\n', f'SECRET = "test-secret"{authentication.test_header}\n'
        )
    return {
        "src/__init__.py": "",
        "src/source.py": _template("source.py").substitute(context),
        f"config/{name}.example.yml": _template("example.yml").substitute(context),
        f"tests/test_{name}_contract.py": test,
        "README.md": _template("README.md").substitute(context),
    }


def write_source(name: str, auth: str, pagination: str, into: Path | None = None) -> Path:
    """Write the new source's folder; refuse an existing one. Returns the folder."""
    check_name(name)
    root = into if into is not None else builtin_connectors_dir()
    folder = root / "sources" / name
    if folder.exists():
        raise ConfigError(f"{folder}: already exists; nothing was written")
    rendered = render(name, auth, pagination)
    if into is None:  # beside the repository's schema: editors complete the example
        example = f"config/{name}.example.yml"
        rendered[example] = f"# yaml-language-server: $schema={_SCHEMA}\n{rendered[example]}"
    for relative, text in rendered.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    schema = committed_schema_path()
    if into is None and schema.is_file():  # the checkout's schema now knows the new source
        schema.write_text(schema_text(builtin_only=True))
    return folder


def _template(name: str) -> Template:
    return Template(files("bizon_core.scaffold").joinpath("templates", f"{name}.tmpl").read_text())
