"""Schemas written into the OpenAPI document by hand (`openapi_extra`), made self-contained."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON Schema with its `$defs` inlined.

    Pydantic refers to nested models as `#/$defs/Name`, a pointer into the document root; placed
    inside the OpenAPI document that root is the OpenAPI object, where no `$defs` exists, so
    ReDoc (rightly) refuses the whole document and Swagger UI shows resolver errors.
    """
    schema = model.model_json_schema()
    defs: dict[str, Any] = schema.pop("$defs", {})

    def resolve(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name in seen:  # a recursive model: stop at an open object
                    return {"type": "object", "title": name}
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[name], seen | {name}), **rest}
            return {k: resolve(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema, frozenset())
    return resolved
