"""The README's worked examples must keep working."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_site_adapter_example_loads(tmp_path):
    from crawler.adapter import load_adapter

    block = re.search(r"```toml\n(.*?)```", README.read_text(), re.S).group(1)
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
