"""The HTTP API's OpenAPI document: written to ``docs/reference/openapi.json`` and rendered for the docs.

``python -m harness.docs.openapi`` imports the service class and asks BentoML for its specification
(``Service.openapi_spec``) with this service's contract applied (``astrospect.serving.contract``), exactly
what ``/docs.json`` serves. No model is needed: the class is inspected, never instantiated. ``--check``
exits 1 when the committed file differs from what the code gives now.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[2]
OPENAPI_PATH = ROOT / "docs" / "reference" / "openapi.json"
METHODS = ("get", "post", "put", "delete", "patch")


def openapi_document() -> dict[str, Any]:
    from astrospect.serving.contract import openapi_document as with_contract
    from astrospect.serving.service import ROUTES, PhotoZ

    return with_contract(cast(Any, PhotoZ).openapi_spec.asdict(), ROUTES)


def serialise(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}`"
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_schema_name(schema['items'])}"
    return f"`{schema.get('type', schema.get('format', 'object'))}`"


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _fields(schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    if not properties:
        return []
    required = set(schema.get("required", []))
    lines = ["| field | type | required | description |", "| --- | --- | --- | --- |"]
    for field, spec in properties.items():
        kind = _schema_name(spec) if isinstance(spec, dict) else "-"
        description = _one_line(spec.get("description")) if isinstance(spec, dict) else ""
        lines.append(f"| `{field}` | {kind} | {'yes' if field in required else 'no'} | {description} |")
    return [*lines, ""]


def openapi_markdown(document: dict[str, Any]) -> str:
    """Each route: method, media types, what it answers per status; then the schemas' fields."""
    lines: list[str] = []
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            lines += [f"### `{method.upper()} {path}`", ""]
            summary = operation.get("description") or operation.get("summary")
            if summary:
                lines += [_one_line(summary), ""]
            body = operation.get("requestBody", {}).get("content", {})
            inline: list[dict[str, Any]] = []
            for media_type, content in body.items():
                schema = content.get("schema", {})
                lines.append(f"Request body: `{media_type}`, {_schema_name(schema)}.")
                if schema.get("properties"):
                    inline.append(schema)
            for parameter in operation.get("parameters", []):
                lines.append(
                    f"Parameter `{parameter.get('name')}` (in {parameter.get('in')}"
                    f"{', required' if parameter.get('required') else ''}): {_one_line(parameter.get('description'))}"
                )
            if body or operation.get("parameters"):
                lines.append("")
            for schema in inline:
                lines += _fields(schema)
            lines += ["| status | meaning | media type |", "| --- | --- | --- |"]
            for status, response in operation.get("responses", {}).items():
                media = ", ".join(f"`{m}`" for m in response.get("content", {})) or "-"
                lines.append(f"| {status} | {_one_line(response.get('description'))} | {media} |")
            lines.append("")
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["### Schemas", ""]
        for name, schema in sorted(schemas.items()):
            lines += [f"#### `{name}`", ""]
            if schema.get("description"):
                lines += [_one_line(schema["description"]), ""]
            lines += _fields(schema)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = serialise(openapi_document())
    if "--check" in argv:
        if not OPENAPI_PATH.is_file() or OPENAPI_PATH.read_text() != text:
            print(f"{OPENAPI_PATH}: differs from the service's document; run python -m harness.docs.openapi")
            return 1
        print(f"{OPENAPI_PATH}: up to date")
        return 0
    OPENAPI_PATH.parent.mkdir(parents=True, exist_ok=True)
    OPENAPI_PATH.write_text(text)
    print(f"wrote {OPENAPI_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
