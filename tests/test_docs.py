"""The documentation: README.md stays a short entry point, every local link and anchor resolves, nothing
links outside the repository, every page is in the site's navigation, and the generated case-key
reference (and cases/schema.json) match what `conformance schema` writes today.

Fast on purpose (text only, no framework, no mkdocs): the strict site build itself runs in tox's lint
environment.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from conformance import cases, cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_LIMIT = 20_000  # bytes: the "under 20 KB" (it was 82,889 before the split)

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)[^`]+?\1")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>")
HTML_LINK = re.compile(r"""<a\s[^>]*href=["']([^"']+)["']""", re.I)
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def prose(text: str) -> str:
    """The Markdown without fenced blocks and code spans, where a link is only text."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(path: Path) -> list[str]:
    text = prose(path.read_text(encoding="utf-8"))
    return LINK.findall(text) + AUTOLINK.findall(text) + HTML_LINK.findall(text)


def slug(heading: str) -> str:
    """Python-Markdown's toc slug (what mkdocs anchors are) of a heading's text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*]", "", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets _1, _2, ... as in Python-Markdown."""
    seen: set[str] = set()
    for _, heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = anchor = slug(heading)
        count = 0
        while anchor in seen:
            count += 1
            anchor = f"{base}_{count}"
        seen.add(anchor)
    return seen


def broken(source: Path, target: str, inside: Path) -> str | None:
    """Why the link `target` of `source` does not resolve to a file (and anchor) under `inside`; None if it does."""
    if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
        return "points outside the repository"
    if target.startswith("/"):
        return "is absolute (links are relative)"
    file_part, _, anchor = target.partition("#")
    resolved = (source.parent / file_part).resolve() if file_part else source
    if not resolved.is_relative_to(inside.resolve()):
        return f"leaves {inside.relative_to(ROOT) if inside != ROOT else 'the repository'}"
    if not resolved.exists():
        return "names no file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"names no heading #{anchor} in {resolved.relative_to(ROOT)}"
    return None


def nav_files(entries: list) -> list[str]:
    out: list[str] = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        out.extend(nav_files(value) if isinstance(value, list) else [value])
    return out


def test_readme_is_short():
    size = README.stat().st_size
    assert size < README_LIMIT, f"README.md is {size:,} bytes; keep it under {README_LIMIT:,} and move the rest into docs/"


def test_readme_keeps_the_two_commands():
    """Other tools rely on them, and .ci/run calls the second one."""
    text = README.read_text(encoding="utf-8")
    assert "python3 -m pip install -q tox && python3 -m tox -e run" in text
    assert "python3 -m pip install -q tox && python3 -m tox " in text
    assert "python3 -m tox" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("path", [README, *pages()], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves(path):
    inside = ROOT if path == README else DOCS  # a docs page links within the site
    bad = [f"{target}: {why}" for target in links(path) if (why := broken(path, target, inside))]
    assert not bad, f"{path.relative_to(ROOT)} has broken links:\n" + "\n".join(bad)


def test_every_page_is_in_the_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    listed = nav_files(config["nav"])
    on_disk = sorted(p.name for p in pages())
    assert sorted(set(listed)) == on_disk, f"in nav, not on disk: {set(listed) - set(on_disk)}; not in nav: {set(on_disk) - set(listed)}"
    assert len(listed) == len(set(listed)), "a page is listed twice in mkdocs.yml's nav"


def test_the_site_fetches_nothing_from_outside():
    """No web fonts (material's default loads Google Fonts) and no generator link."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["theme"]["font"] is False
    assert config["extra"]["generator"] is False
    assert not re.search(r"https?://", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def test_the_generated_references_are_current(tmp_path, capsys):
    """docs/case-keys.md and cases/schema.json are what `conformance schema --markdown docs/case-keys.md`
    writes from today's models; regenerate them with that command when this fails."""
    assert cli.main(["schema", "--out", str(tmp_path / "schema.json"), "--markdown", str(tmp_path / "case-keys.md")]) == 0
    pairs = ((tmp_path / "case-keys.md", DOCS / "case-keys.md"), (tmp_path / "schema.json", ROOT / "cases" / "schema.json"))
    for written, committed in pairs:
        assert written.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8"), (
            f"{committed.relative_to(ROOT)} is out of date: run `conformance schema --markdown docs/case-keys.md`"
        )


def test_every_case_key_is_described():
    """The key reference is only as good as the descriptions: a key added without one fails here."""
    document = cases.schema()
    models = {"case": document["properties"]["cases"]["items"], **document["$defs"]}
    missing = [f"{model}.{key}" for model, node in models.items() for key, f in node["properties"].items() if not f.get("description")]
    assert not missing, f"keys without a description (give their pydantic Field a description=): {missing}"
