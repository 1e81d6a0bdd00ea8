"""Docs that cannot rot: every link in the docs resolves inside the repository, every `carscope ...` command in
their code blocks parses with the real command line, and they describe the system, not who worked on it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "carscope" / "crawler" / "sites" / "README.md",
               ROOT / "carscope" / "showroom" / "SITE.md", *(ROOT / "docs").glob("*.md"),
               *(ROOT / "benchmarks" / "results").glob("*/README.md")])
COMMAND_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "carscope" / "crawler" / "sites" / "README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def _anchors(path: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(), re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    bad = []
    for target in LINK.findall(text):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.is_relative_to(ROOT) or not dest.exists():
            bad.append(f"{target} (no such file in the repository)")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target} (no such heading)")
    assert not bad, f"{doc.relative_to(ROOT)}: {bad}"


def _commands(doc: Path) -> list[str]:
    out = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", doc.read_text(), re.S):
        lines = block.replace("\\\n", " ").splitlines()
        for line in lines:
            line = line.split("  #", 1)[0].strip()
            if " -m carscope " in line:  # torchrun ... -m carscope train ...
                line = "carscope " + line.split(" -m carscope ", 1)[1]
            words = line.split()
            if line.startswith("carscope ") and not (words[1].endswith(":") or words[1][0].isdigit()):
                out.append(line)  # (not a line of output: "carscope 0.1.0 at ...", "carscope crawl: error: ...")
    return out


def _exact(parser):
    """No abbreviated flags: a renamed `--view-data` -> `--view-dataset` must fail the docs, not match by prefix."""
    import argparse

    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _exact(sub)
    return parser


def test_docs_have_commands_to_check():
    assert sum(len(_commands(d)) for d in COMMAND_DOCS) >= 25


@pytest.mark.parametrize("doc", COMMAND_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_in_the_docs_parses(doc):
    from carscope.commands.cli import build_parser

    parser = _exact(build_parser())
    failed = []
    for line in _commands(doc):
        try:
            parser.parse_args(shlex.split(line)[1:])
        except SystemExit:
            failed.append(line)
    assert not failed, f"{doc.relative_to(ROOT)}: commands that carscope refuses: {failed}"


WHO = re.compile(r"\b(?:first|second|third|fourth|fifth|sixth|this|that|earlier|later|previous|next)\s+session\b"
                 r"|\bsession's code\b|\bI measured\b|\bwe measured\b|\bin the session\b", re.I)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_code_versions_not_sittings(doc):
    hits = [m.group(0) for m in WHO.finditer(doc.read_text())]
    assert not hits, f"{doc.relative_to(ROOT)} speaks of sittings or people: {hits}"
    assert "../shared" not in doc.read_text(), f"{doc.relative_to(ROOT)} points outside the repository"


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 160
    assert "../shared" not in text
    table = text.split("## Benchmarks", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith(("| stage", "|---"))]
    assert rows and all("benchmarks/results/" in ln for ln in rows), "a benchmark figure without its run"
