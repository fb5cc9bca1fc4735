"""Importers: other tools' recorded calls turned into case files (`conformance import SOURCE FILE...`).

One module per source, each with `read(paths) -> Import` (what it could and could not express) and
`write(imported, out) -> list[Path]` (case files the project's own loader reads).
"""
