"""Safe YAML loading that keeps line numbers and rejects duplicate keys, a whole document or one value at a time.

`yaml.safe_load` forgets where a value came from and silently keeps the last of two equal keys; error
messages here must name the line, so the node tree is walked by hand with the safe constructor. Only
plain YAML is accepted: a tag on a mapping or list (`!!python/object...`, `!!set`) is an error, not
silently dropped; merge keys (`<<: *anchor`) work as in `yaml.safe_load`. Aliases may reach at most
`ALIAS_LIMIT` values in a document: a few lines of nested aliases (an "alias bomb") would otherwise hang
the loader.

A node tree costs about 100 times its text (each scalar a node with two marks), so a large case file is
not composed whole: `Document` reads the root mapping key by key and a long list item by item, composing
one item's nodes at a time from the parser's events (PyYAML's composer; libyaml's only composes whole
documents). Memory then follows the largest item, not the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, Any

import yaml
from yaml.composer import Composer
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from conformance.errors import CaseError

Path = tuple[Any, ...]
# libyaml's parser where PyYAML was built with it: the same events and marks, about 8x faster to parse.
_Events: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"
MERGE_TAG = "tag:yaml.org,2002:merge"
# Case files share values through aliases (defaults, merge keys: the shipped ones reach at most 277 values
# that way); nine lines of nested aliases reach 10^8 and would hang the loader. A million is far from both.
ALIAS_LIMIT = 1_000_000


class _Loader(_Events, Composer):  # type: ignore[misc]
    """The safe loader's parser and constructor with PyYAML's own composer, which composes one node at a
    time (a whole document, or one value of it), counting what each alias reaches as it is met."""

    def __init__(self, stream: IO[str] | str, file: str) -> None:
        _Events.__init__(self, stream)
        self.anchors: dict[str, yaml.Node] = {}
        self.file = file
        self.reached = 0
        self.sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """An alias counts its whole expansion (an alias is the same node object as its anchor, so each
        node's size is counted once: linear in the file however much the aliases multiply it); the alias
        that takes the document past `ALIAS_LIMIT` is the error's line."""
        if self.check_event(AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:
                self.reached += _size(node, self.sizes)
                if self.reached > ALIAS_LIMIT:
                    message = (
                        f"the aliases up to this one reach more than {ALIAS_LIMIT:,} values (an alias bomb?); "
                        "case files use aliases to share a value (defaults, merge keys), not to multiply it"
                    )
                    raise CaseError(self.file, message, event.start_mark.line + 1)
        return Composer.compose_node(self, parent, index)  # type: ignore[return-value]

    def document_end(self, first: yaml.Mark | None) -> None:
        """Past the end of the document: another document is an error, as in `yaml.safe_load`."""
        self.get_event()
        if not self.check_event(StreamEndEvent):
            event = self.get_event()
            raise yaml.composer.ComposerError(
                "expected a single document in the stream", first, "but found another document", event.start_mark
            )


def _size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """The values `node` expands to; memoised by id (the nodes reached through aliases are anchored, so
    they live as long as the document's anchors)."""
    if id(node) not in sizes:
        sizes[id(node)] = 0  # a node reached inside itself counts once here; the builder rejects it
        sizes[id(node)] = 1 + sum(_size(child, sizes) for child in _children(node))
    return sizes[id(node)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


@contextlib.contextmanager
def _errors(file: str) -> Iterator[None]:
    """PyYAML's errors as a CaseError naming the file and the line."""
    try:
        yield
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise CaseError(file, f"not valid YAML: {exc.problem or exc}", line) from None
    except yaml.YAMLError as exc:
        raise CaseError(file, f"not valid YAML: {exc}") from None


def load(text: str, file: str) -> tuple[Any, dict[Path, int]]:
    """Return the document and a map from each value's path (keys and indexes) to its 1-based line.

    For a mapping entry the line is the key's line, where a reader looks for it.
    """
    loader = _Loader(text, file)
    lines: dict[Path, int] = {}
    try:
        with _errors(file):
            loader.get_event()  # the stream's start
            if loader.check_event(StreamEndEvent):
                return None, lines
            start = loader.get_event().start_mark
            node = loader.compose_node(None, None)
            loader.document_end(start)
            return _Builder(loader, lines, file).build(node, (), None), lines
    finally:
        loader.dispose()


class Document:
    """A YAML file whose root is a mapping, read one value at a time: `keys` gives each key of the root
    with its line, and the caller takes the value (`value`, or `items` for a list, item by item) or
    passes over it (`skip`, reading events only) before the next key. Lines are those of `load`."""

    def __init__(self, stream: IO[str] | str, file: str) -> None:
        self.file = file
        self.loader = _Loader(stream, file)
        self.start: yaml.Mark | None = None

    def __enter__(self) -> Document:
        return self

    def __exit__(self, *exc: object) -> None:
        self.loader.dispose()

    def mapping(self) -> bool:
        """Whether the root is a mapping (entered, for `keys`); False for an empty file or another root."""
        loader = self.loader
        with _errors(self.file):
            loader.get_event()  # the stream's start
            if loader.check_event(StreamEndEvent):
                return False
            self.start = loader.get_event().start_mark
            if not loader.check_event(MappingStartEvent):
                return False
            event = loader.get_event()  # an anchor on the root could only be used inside it: not registered
            tag = self._tag(event, yaml.MappingNode)
            if tag != MAP_TAG:
                raise CaseError(self.file, _tag_message(tag), event.start_mark.line + 1)
            return True

    def keys(self) -> Iterator[tuple[Any, int]]:
        """Each key of the root mapping and its line; a duplicate key, a key that is no plain scalar and
        a second document are errors naming their line."""
        loader = self.loader
        seen: set[Any] = set()
        with _errors(self.file):
            while not loader.check_event(MappingEndEvent):
                key_node = loader.compose_node(None, None)
                key = _Builder(loader, {}, self.file).key(key_node, seen)
                loader.constructed_objects.clear()
                seen.add(key)
                yield key, key_node.start_mark.line + 1
            loader.get_event()
            loader.document_end(self.start)

    def value(self, path: Path, line: int) -> tuple[Any, dict[Path, int]]:
        """The value under the key just read (at `path`, whose key is on `line`) and its lines."""
        with _errors(self.file):
            return self._build(self.loader.compose_node(None, None), path, line)

    def items(self, path: Path) -> Iterator[tuple[Any, dict[Path, int]]] | None:
        """The items of the list under the key just read, one at a time, each with its lines (paths
        `path + (index,)`); None, with nothing read, if the value is no list. A list with an anchor or a
        tag is composed whole first (an alias may refer to it; the builder checks the tag)."""
        loader = self.loader
        with _errors(self.file):
            if loader.check_event(SequenceStartEvent):
                event = loader.peek_event()
                if event.anchor is None and self._tag(event, yaml.SequenceNode) == SEQ_TAG:
                    loader.get_event()
                    return self._streamed(path)
            elif not loader.check_event(AliasEvent):
                return None
            node = loader.compose_node(None, None)
        if not isinstance(node, yaml.SequenceNode):
            return None
        return self._composed(node, path)

    def _streamed(self, path: Path) -> Iterator[tuple[Any, dict[Path, int]]]:
        loader = self.loader
        index = 0
        with _errors(self.file):
            while not loader.check_event(SequenceEndEvent):
                yield self._build(loader.compose_node(None, None), path + (index,), None)
                index += 1
            loader.get_event()

    def _composed(self, node: yaml.SequenceNode, path: Path) -> Iterator[tuple[Any, dict[Path, int]]]:
        with _errors(self.file):
            _Builder(self.loader, {}, self.file).check(node)
            for index, item in enumerate(node.value):
                yield self._build(item, path + (index,), None)

    def _build(self, node: yaml.Node, path: Path, line: int | None) -> tuple[Any, dict[Path, int]]:
        """A value and its lines. PyYAML's constructor remembers every node it built until the end of
        the document; emptied after each value here, the value's nodes go as soon as it is built."""
        lines: dict[Path, int] = {}
        try:
            return _Builder(self.loader, lines, self.file).build(node, path, line), lines
        finally:
            self.loader.constructed_objects.clear()

    def skip(self) -> None:
        """Pass over the value under the key just read, reading events only (no node, no anchor kept)."""
        loader = self.loader
        depth = 0
        with _errors(self.file):
            while True:
                event = loader.get_event()
                if isinstance(event, CollectionStartEvent):
                    depth += 1
                elif isinstance(event, CollectionEndEvent):
                    depth -= 1
                if depth == 0 and isinstance(event, (ScalarEvent, AliasEvent, CollectionEndEvent)):
                    return

    def _tag(self, event: Any, kind: type[yaml.Node]) -> str:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(kind, None, event.implicit)
        return str(tag)


def _tag_message(tag: str) -> str:
    return f"the tag {tag!r} is not allowed: case files hold plain mappings, lists and scalars"


class _Builder:
    def __init__(self, loader: _Loader, lines: dict[Path, int], file: str) -> None:
        self.loader = loader
        self.lines = lines
        self.file = file
        self.open: set[int] = set()

    def fail(self, node: yaml.Node, message: str, key: str | None = None) -> CaseError:
        return CaseError(self.file, message, node.start_mark.line + 1, key)

    def check(self, node: yaml.Node) -> None:
        """A mapping or a list must carry its plain tag."""
        expected = MAP_TAG if isinstance(node, yaml.MappingNode) else SEQ_TAG
        if node.tag != expected:
            raise self.fail(node, _tag_message(node.tag))

    def build(self, node: yaml.Node, path: Path, line: int | None) -> Any:
        self.lines[path] = line or node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode):
            return self.loader.construct_object(node, deep=True)
        if id(node) in self.open:
            raise self.fail(node, "an alias refers to a value that contains it (a recursive structure)")
        self.check(node)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, path + (i,), None) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, path)
        finally:
            self.open.discard(id(node))

    def key(self, node: yaml.Node, seen: Any) -> Any:
        """A mapping key: a plain scalar not among those `seen` before it."""
        key = self.loader.construct_object(node, deep=True)
        if not isinstance(key, (str, int, float, bool)):
            raise self.fail(node, f"a mapping key must be a plain scalar, got {key!r}")
        if key in seen:
            raise self.fail(node, f"duplicate key '{key}' (YAML would silently keep the last one)", str(key))
        return key

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
            key = self.key(key_node, out)
            out[key] = self.build(value_node, path + (key,), key_node.start_mark.line + 1)
        for key, value in merged.items():
            if key not in out:
                out[key] = value
                self.lines.setdefault(path + (key,), self.lines.get(path + ("<<",), node.start_mark.line + 1))
        return out
