"""Every ```python example in README.md runs, under each backend, so the README cannot drift.

Each fenced ``python`` block is one test, named after the section it sits in, executed on its
own (a fresh namespace) in a temporary working folder, so the files it writes (``runs/...``)
go nowhere. The examples use tiny data (the bundled digits, a few images) and ``weights=None``:
nothing is downloaded. A block that cannot run here is preceded in README.md by the line
``<!-- readme-test: skip REASON -->`` and is reported as skipped with that reason; shell
commands go in ```bash blocks, which are not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\s+(?P<reason>.+?)\s*-->")


def python_blocks(text: str) -> list[dict]:
    """The ```python blocks of a Markdown text: source, first line, section, skip reason."""
    blocks = []
    section = "top"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            section = line.lstrip("#").strip()
        fence = line.strip()
        if fence.startswith("```"):
            language = fence[3:].strip()
            start = i + 1
            end = start
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if language == "python":
                previous = next((p for p in reversed(lines[:i]) if p.strip()), "")
                skip = SKIP_MARK.search(previous)
                blocks.append({
                    "source": "\n".join(lines[start:end]) + "\n",
                    "line": start + 1,
                    "section": section,
                    "skip": skip.group("reason") if skip else None,
                })
            i = end + 1
            continue
        i += 1
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def _block_id(block: dict) -> str:
    words = re.sub(r"[^0-9A-Za-z]+", "-", block["section"]).strip("-").lower()
    return f"L{block['line']}-{words[:40]}"


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 8, f"expected the README's examples, found {len(BLOCKS)} blocks"


def test_readme_is_a_short_users_document():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move details to docs/ (at most 300)"


def test_readme_local_links_exist():
    text = README.read_text(encoding="utf-8")
    targets = {m.split("#")[0] for m in re.findall(r"\]\(([^)\s]+)\)", text)}
    local = sorted(t for t in targets if t and "://" not in t)
    missing = [t for t in local if not (README.parent / t).exists()]
    assert local and not missing, f"README.md links to missing files: {missing}"


@pytest.mark.parametrize("block", BLOCKS, ids=[_block_id(b) for b in BLOCKS])
def test_readme_example_runs(block, tmp_path, monkeypatch):
    if block["skip"]:
        pytest.skip(f"README.md line {block['line']}: {block['skip']}")
    monkeypatch.chdir(tmp_path)
    code = compile(block["source"], f"README.md:{block['line']}", "exec")
    exec(code, {"__name__": "__readme__"})  # noqa: S102 - the README's own examples
