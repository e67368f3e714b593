"""The docs stand alone: every link between pages lands on a heading that exists, and every Python
example passes pyflakes (ruff's F rules: a name used without its import, an undefined name)."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from tests.support import ROOT

PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces made dashes."""
    text = re.sub(r"`|\*\*?|_{2}", "", heading.strip().lower())
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text())
    found: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            base = _anchor(line.lstrip("#"))
            anchor, n = base, 1
            while anchor in found:  # GitHub numbers repeated headings: name, name-1, name-2
                anchor, n = f"{base}-{n}", n + 1
            found.add(anchor)
    return found


def _links() -> list[tuple[Path, str]]:
    found = []
    for page in PAGES:
        text = _FENCE.sub("", page.read_text())
        found += [(page, target) for target in _LINK.findall(text)
                  if not target.startswith(("http://", "https://", "mailto:"))]
    return found


@pytest.mark.parametrize("page, target", _links(), ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v)
def test_every_link_between_pages_lands(page, target):
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    assert destination.exists(), f"{page.relative_to(ROOT)} links to {target}: no such file"
    if anchor and destination.suffix == ".md":
        assert anchor in _anchors(destination), f"{page.relative_to(ROOT)} links to {target}: no such heading"


def test_every_python_example_passes_pyflakes(tmp_path):
    # Each example is a file of its own (they are read separately), checked with ruff's F rules
    examples = []
    for page in PAGES:
        for number, (language, code) in enumerate(_FENCE.findall(page.read_text())):
            if language == "python":
                example = tmp_path / f"{page.stem}_{number}.py"
                example.write_text(code)
                examples.append(str(example))
    assert examples
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F",
                             "--output-format", "concise", *examples], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


_CODE_POINTER = re.compile(r'(README(?:\.md)?|docs/[\w/.-]+\.md)(?:,? \\?"([^"\\]+)\\?")?')


def test_what_the_tools_point_at_exists():
    # A help text or error line that sends the operator to a page (and a section) is a link too:
    # `README "Commands"` once named a section that no longer existed.
    pointers = []
    for package in ("cli", "local", "onprem"):
        for source in sorted((ROOT / package).rglob("*.py")):
            for page, section in _CODE_POINTER.findall(source.read_text()):
                pointers.append((source.relative_to(ROOT), "README.md" if page.startswith("README") else page,
                                 section))
    assert pointers, "no pointer found: the pattern no longer matches how the tools cite the docs"
    for source, page, section in pointers:
        assert (ROOT / page).is_file(), f"{source} points at {page}, which does not exist"
        if section:
            headings = [line.lstrip("#").strip() for line in (ROOT / page).read_text().splitlines()
                        if line.startswith("#")]
            assert section in headings, f"{source} points at {page} section {section!r}, which does not exist"
