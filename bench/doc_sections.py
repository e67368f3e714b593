"""docs/benchmarks.md is written by several benchmarks, each owning one `## ` section: a run
replaces its own section (or appends it) and leaves the others as they are."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nProduced by the scripts in `bench/` (`./run bench`); rerun them after changing the hot path.\n"


def replace_section(text: str, path: Path = DOCS) -> None:
    """`text` starts with its `## Title` line; the section of that title is replaced."""
    title = text.lstrip().split("\n", 1)[0]
    assert title.startswith("## "), "a section starts with its ## title"
    current = path.read_text(encoding="utf-8") if path.exists() else HEADER
    sections = _split(current)
    body = text.strip("\n") + "\n"
    for index, (head, _) in enumerate(sections):
        if head == title:
            sections[index] = (head, body)
            break
    else:
        sections.append((title, body))
    preamble = current.split("\n## ", 1)[0].rstrip("\n") + "\n"
    path.write_text(preamble + "".join("\n" + content for _, content in sections), encoding="utf-8")


def _split(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for chunk in text.split("\n## ")[1:]:
        content = "## " + chunk.rstrip("\n") + "\n"
        out.append((content.split("\n", 1)[0], content))
    return out
