"""Safe YAML loading that keeps line numbers and rejects duplicate keys.

`yaml.safe_load` forgets where a value came from and silently keeps the last of two equal keys; error
messages here must name the line, so the node tree is walked by hand with the safe constructor.
"""

from __future__ import annotations

from typing import Any

import yaml

from conformance.errors import CaseError

Path = tuple[Any, ...]


def load(text: str, file: str) -> tuple[Any, dict[Path, int]]:
    """Return the document and a map from each value's path (keys and indexes) to its 1-based line."""
    loader = yaml.SafeLoader(text)
    lines: dict[Path, int] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _build(loader, node, (), lines, file), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise CaseError(file, f"not valid YAML: {exc.problem or exc}", line) from None
    except yaml.YAMLError as exc:
        raise CaseError(file, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, lines: dict[Path, int], file: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise CaseError(file, f"a mapping key must be a plain scalar, got {key!r}", key_node.start_mark.line + 1)
            if key in out:
                raise CaseError(
                    file,
                    f"duplicate key '{key}' (YAML would silently keep the last one)",
                    key_node.start_mark.line + 1,
                    str(key),
                )
            out[key] = _build(loader, value_node, path + (key,), lines, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), lines, file) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
