"""The worked examples of the README and docs/ must keep working."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_crawling_guide_adapter_example_loads(tmp_path):
    from carscope.crawler.adapter import load_adapter

    blocks = re.findall(r"```toml\n(.*?)```", (DOCS / "crawling.md").read_text(), re.S)
    block = next(b for b in blocks if 'name = "mycatalog"' in b)  # the worked example (other blocks are fragments)
    path = tmp_path / "mycatalog.toml"
    path.write_text(block)
    adapter = load_adapter(str(path))
    assert adapter.name == "mycatalog"
    assert adapter.page_types["photos"].browser
    assert adapter.page_types["specifications"].specs.pairs[0].row == "div.specs-set-item"
    assert adapter.page_types["specifications"].identity.make.css == "div.breadcrumb a:nth-of-type(2)"
    pattern, replace = adapter.page_types["photos"].photos[0].rewrite[0]  # the seed's thumbnail -> CDN full size
    assert pattern.sub(replace, "https://www.example-cars.com/2023/acme/smlab12_s.jpg") == \
        "https://images.example-cars.com/2023/acme/ab12.jpg"


def test_readme_starts_with_the_two_commands():
    head = README.read_text().split("```")[1]
    assert "make demo" in head and "make test" in head


def test_import_guide_commands_parse():
    """Every command of the importing guide parses with the real CLI (no flag that does not exist)."""
    import shlex

    from carscope.commands.cli import build_parser

    section = (DOCS / "importing.md").read_text()
    lines = [ln.split("  #", 1)[0].strip() for block in re.findall(r"```\n(.*?)```", section, re.S)
             for ln in block.splitlines() if ln.startswith("carscope ")]
    assert len(lines) == 8
    parser = build_parser()
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])
        assert args.command in ("dataset", "train", "export", "serve"), line
    assert any("--view-data" in ln for ln in lines) and any("--all-years" in ln for ln in lines)
