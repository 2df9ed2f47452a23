"""Write the HTTP API reference (docs/api.md) from the app's own OpenAPI description.

The page holds one generated block:

    <!-- api-reference -->
    ...generated...
    <!-- api-reference: end -->

`python tools/api_reference.py` rewrites it from `mnistlab serve`'s app; `--check` changes
nothing and exits 1 when the block is stale (tests/test_docs.py runs the same check), so the
reference cannot drift from what the server answers.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCK = re.compile(r"(<!-- api-reference -->\n)(.*?)(<!-- api-reference: end -->)", re.S)
METHODS = ("get", "post", "put", "delete")


def openapi() -> dict[str, Any]:
    """The description the server publishes at /openapi.json, with the shipped model."""
    from mnistlab.serve.app import create_app
    from mnistlab.serve.options import ServeOptions

    return create_app(ServeOptions()).openapi()


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(schema: dict[str, Any]) -> str:
    """A JSON schema as a short type: `integer`, `number or null`, `array of DigitResponse`."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(part) for part in schema["anyOf"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"object of {_type(schema['additionalProperties'])}"
    if kind == "string" and schema.get("format") == "binary":
        return "file"
    return kind


def _limits(schema: dict[str, Any]) -> str:
    parts = [
        part
        for item in [schema, *schema.get("anyOf", [])]
        for part in (
            f"≥ {item['minimum']}" if "minimum" in item else "",
            f"≤ {item['maximum']}" if "maximum" in item else "",
        )
        if part
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _body(operation: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return []
    lines = []
    form = content.get("multipart/form-data")
    if form:
        fields = ", ".join(
            f"`{name}` ({_type(field)})" for name, field in form["schema"]["properties"].items()
        )
        lines.append(f"- `multipart/form-data` with {fields}")
    raw = [f"`{kind}`" for kind in content if kind != "multipart/form-data"]
    if raw:
        lines.append(f"- or the image as the raw body, with Content-Type {', '.join(raw)}")
    return ["**Body**", "", *lines, ""]


def _parameters(operation: dict[str, Any]) -> list[str]:
    parameters = operation.get("parameters", [])
    if not parameters:
        return []
    rows = [
        f"| `{p['name']}` | {p['in']} | {_type(p['schema'])}{_limits(p['schema'])}"
        f" | {_cell(p.get('description', ''))} |"
        for p in parameters
    ]
    return ["| parameter | in | type | meaning |", "| --- | --- | --- | --- |", *rows, ""]


def _responses(operation: dict[str, Any]) -> list[str]:
    rows = []
    for status, response in sorted(operation.get("responses", {}).items()):
        content = response.get("content", {})
        schema = content.get("application/json", {}).get("schema") or {}
        body = (
            _type(schema)
            if schema
            else ", ".join(f"`{kind}`" for kind in content if kind != "application/json")
        )
        meaning = response.get("description", "")
        if meaning == "Successful Response":
            meaning = "the answer"
        rows.append(f"| {status} | {_cell(meaning)} | {body} |")
    return ["| status | when | body |", "| --- | --- | --- |", *rows, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    lines += ["| field | type | meaning |", "| --- | --- | --- |"]
    for field, spec in schema.get("properties", {}).items():
        optional = "" if field in required else " (optional)"
        lines.append(
            f"| `{field}` | {_type(spec)}{optional} | {_cell(spec.get('description', ''))} |"
        )
    return [*lines, ""]


def render_reference(spec: dict[str, Any]) -> str:
    """The routes, then the JSON bodies they use, as Markdown."""
    lines = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            lines += [f"## `{method.upper()} {path}`", "", f"{operation.get('summary', '')}.", ""]
            if operation.get("description"):
                lines += [_cell(operation["description"]), ""]
            lines += _body(operation) + _parameters(operation) + _responses(operation)
    lines += ["## Bodies", ""]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if name in {"HTTPValidationError", "ValidationError"}:
            continue  # The app answers invalid requests with ErrorResponse instead.
        lines += _schema(name, schema)
    return "\n".join(lines)


def render(page: str, spec: dict[str, Any]) -> str:
    return BLOCK.sub(lambda m: f"{m.group(1)}{render_reference(spec)}{m.group(3)}", page)


def is_stale() -> bool:
    page = PAGE.read_text()
    return render(page, openapi()) != page


def main(argv: list[str]) -> int:
    page = PAGE.read_text()
    fresh = render(page, openapi())
    if "--check" in argv:
        if fresh != page:
            print(f"{PAGE}: the API changed; run python tools/api_reference.py", file=sys.stderr)
            return 1
        return 0
    if fresh != page:
        PAGE.write_text(fresh)
        print(f"rewrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
