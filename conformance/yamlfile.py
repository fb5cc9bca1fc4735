"""Safe YAML loading that keeps line numbers and rejects duplicate keys.

`yaml.safe_load` forgets where a value came from and silently keeps the last of two equal keys; error
messages here must name the line, so the node tree is walked by hand with the safe constructor. Only
plain YAML is accepted: a tag on a mapping or list (`!!python/object...`, `!!set`) is an error, not
silently dropped; merge keys (`<<: *anchor`) work as in `yaml.safe_load`. Aliases may reach at most
`ALIAS_LIMIT` values: a few lines of nested aliases (an "alias bomb") would otherwise hang the loader.
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
# Case files share values through aliases (defaults, merge keys: the shipped ones reach at most 277 values
# that way); nine lines of nested aliases reach 10^8 and would hang the loader. A million is far from both.
ALIAS_LIMIT = 1_000_000


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
        _check_aliases(node, text, file)
        return _Builder(loader, lines, file).build(node, (), None), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise CaseError(file, f"not valid YAML: {exc.problem or exc}", line) from None
    except yaml.YAMLError as exc:
        raise CaseError(file, f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _check_aliases(root: yaml.Node, text: str, file: str) -> None:
    """Refuse a file whose aliases reach more than `ALIAS_LIMIT` values, naming the alias that crosses
    the limit. An alias is the same node object as its anchor, so the size of every node's expansion is
    counted once per node (linear in the file, however much the aliases multiply it)."""
    if "*" not in text:  # no alias at all (most case files): nothing to count
        return
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = 0  # a node reached inside itself counts once here; the builder rejects it
            sizes[id(node)] = 1 + sum(size(child) for child in _children(node))
        return sizes[id(node)]

    if size(root) <= ALIAS_LIMIT:
        return
    # In document order (anchors come before their aliases), a node met again is met through an alias.
    seen: set[int] = set()
    reached = aliases = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            aliases += 1
            reached += size(node)
            if reached > ALIAS_LIMIT:
                message = (
                    f"the aliases up to this one reach more than {ALIAS_LIMIT:,} values (an alias bomb?); "
                    "case files use aliases to share a value (defaults, merge keys), not to multiply it"
                )
                raise CaseError(file, message, _alias_line(text, aliases))
            continue
        seen.add(id(node))
        stack.extend(reversed(_children(node)))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _alias_line(text: str, number: int) -> int | None:
    """The 1-based line of the file's `number`-th alias (parsed again, only to say where the file went wrong)."""
    aliases = (event for event in yaml.parse(text, Loader=_Loader) if isinstance(event, yaml.AliasEvent))
    for count, event in enumerate(aliases, 1):
        if count == number and event.start_mark is not None:
            return int(event.start_mark.line) + 1
    return None


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
