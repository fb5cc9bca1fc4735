"""Safe YAML loading that keeps line numbers and rejects duplicate keys.

`yaml.safe_load` forgets where a value came from and silently keeps the last of two equal keys; error
messages here must name the line, so the node tree is walked by hand with the safe constructor. Only
plain YAML is accepted: a tag on a mapping or list (`!!python/object...`, `!!set`) is an error, not
silently dropped; merge keys (`<<: *anchor`) work as in `yaml.safe_load`.
"""

from __future__ import annotations

from typing import Any

import yaml

from conformance.errors import CaseError

Path = tuple[Any, ...]
# libyaml's parser where PyYAML was built with it: the same nodes and marks, about 8x faster to parse.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"


def load(text: str, file: str) -> tuple[Any, dict[Path, int]]:
    """Return the document and a map from each value's path (keys and indexes) to its 1-based line.

    For a mapping entry the line is the key's line, where a reader looks for it.
    """
    loader = _Loader(text)
    lines: dict[Path, int] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _Builder(loader, lines, file).build(node, (), None), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise CaseError(file, f"not valid YAML: {exc.problem or exc}", line) from None
    except yaml.YAMLError as exc:
        raise CaseError(file, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, lines: dict[Path, int], file: str) -> None:
        self.loader = loader
        self.lines = lines
        self.file = file
        self.open: set[int] = set()

    def fail(self, node: yaml.Node, message: str, key: str | None = None) -> CaseError:
        return CaseError(self.file, message, node.start_mark.line + 1, key)

    def build(self, node: yaml.Node, path: Path, line: int | None) -> Any:
        self.lines[path] = line or node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self.loader.construct_object(node, deep=True)
        if id(node) in self.open:
            raise self.fail(node, "an alias refers to a value that contains it (a recursive structure)")
        expected = MAP_TAG if isinstance(node, yaml.MappingNode) else SEQ_TAG
        if node.tag != expected:
            raise self.fail(node, f"the tag {node.tag!r} is not allowed: case files hold plain mappings, lists and scalars")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, path + (i,), None) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, path)
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        raise self.fail(source, "a merge key (<<) takes a mapping or a list of mappings")
                    for key, value in self.build(source, path + ("<<",), None).items():
                        merged.setdefault(key, value)
                continue
            key = self.loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)):
                raise self.fail(key_node, f"a mapping key must be a plain scalar, got {key!r}")
            if key in out:
                raise self.fail(key_node, f"duplicate key '{key}' (YAML would silently keep the last one)", str(key))
            out[key] = self.build(value_node, path + (key,), line)
        for key, value in merged.items():
            if key not in out:
                out[key] = value
                self.lines.setdefault(path + (key,), self.lines.get(path + ("<<",), node.start_mark.line + 1))
        return out
