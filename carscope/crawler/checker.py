"""The adapter checker: each field of a site adapter's TOML validated where it is read, and every error one line
that names the file, the line and the field (`sites/foo.toml:12: pages.model.photos.image: invalid CSS ...`).

    python -c "from pathlib import Path; from carscope.crawler.checker import Checker; ck = Checker(Path('a.toml'), '[site]'); print(ck.regex('site', 'x', 'a+'))"

carscope/crawler/adapter.py makes one per file and hands it to each piece that reads a table of it: the page
types, the spec pair forms' and photo sources' `build()` (carscope/crawler/extract/), the browser actions.
"""

from __future__ import annotations

import re
from pathlib import Path

from carscope.common.errors import CarscopeError


class Checker:
    """Validates fields and reports `file:line: field: problem`."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()
        self.index = 0  # which [[table]] of an array of tables is being checked

    def at(self, index: int) -> Checker:
        """This checker, pointing its line numbers at the `index`-th [[table]] of an array of tables."""
        import copy

        other = copy.copy(self)
        other.index = index
        return other

    def line_of(self, table: str, key: str | None, index: int = 0) -> int:
        """Best-effort line of `key` inside `[table]` (or of the table header when key is None); `index` picks
        the n-th `[[table]]` of an array of tables."""
        header = re.compile(r"^\s*\[\[?\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]\]?\s*(#.*)?$")
        starts = [i for i, line in enumerate(self.lines) if header.match(line)]
        start = starts[min(index, len(starts) - 1)] if starts else -1  # -1: a dotted key or inline table
        if key is None:
            return start + 1 if start >= 0 else 1
        key_re = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        for i in range(start + 1, len(self.lines)):
            if i > start + 1 and re.match(r"^\s*\[", self.lines[i]) and start >= 0:
                break
            if key_re.match(self.lines[i]):
                return i + 1
        return start + 1 if start >= 0 else 1

    def fail(self, table: str, key: str | None, problem: str, index: int | None = None):
        fieldname = f"{table}.{key}" if key else table
        line = self.line_of(table, key, self.index if index is None else index)
        raise CarscopeError(f"{self.path}:{line}: {fieldname}: {problem}")

    def get(self, table: dict, tname: str, key: str, kind, *, required=False, default=None):
        if key not in table:
            if required:
                self.fail(tname, None, f"missing required field '{key}'")
            return default
        value = table[key]
        if kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                self.fail(tname, key, "expected a list of non-empty strings")
            return value
        if kind is bool:
            if not isinstance(value, bool):
                self.fail(tname, key, f"expected true or false, got {value!r}")
            return value
        if not isinstance(value, str) or not value.strip():
            self.fail(tname, key, f"expected a non-empty string, got {value!r}")
        return value

    def selector(self, tname: str, key: str, sel: str | None) -> str | None:
        if sel is None:
            return None
        from cssselect import GenericTranslator, SelectorError

        try:
            GenericTranslator().css_to_xpath(sel)
        except SelectorError as exc:
            self.fail(tname, key, f"invalid CSS selector {sel!r} ({exc})")
        return sel

    def xpath(self, tname: str, key: str, expr: str) -> str:
        from lxml import etree

        try:
            etree.XPath(expr)
        except etree.XPathError as exc:
            self.fail(tname, key, f"invalid XPath {expr!r} ({exc})")
        return expr

    def jmespath(self, tname: str, key: str, expr: str) -> str:
        import jmespath
        from jmespath.exceptions import JMESPathError

        try:
            jmespath.compile(expr)
        except JMESPathError as exc:
            self.fail(tname, key, f"invalid JMESPath expression {expr!r} ({' '.join(str(exc).split())})")
        return expr

    def table(self, parent: dict, tname: str, key: str) -> dict:
        value = parent[key]
        if not isinstance(value, dict):
            self.fail(tname, key, "expected a table")
        return value

    def known(self, table: dict, tname: str, keys) -> None:
        for key in table:
            if key not in keys:
                self.fail(tname, key, f"unknown field (known: {', '.join(sorted(keys))})")

    def regex(self, tname: str, key: str, pattern: str) -> re.Pattern:
        try:
            return re.compile(pattern)
        except re.error as exc:
            self.fail(tname, key, f"invalid regular expression {pattern!r} ({exc})")
            raise  # unreachable

    def rewrites(self, tname: str, key: str, value) -> list[tuple[re.Pattern, str]]:
        """A list of `{ pattern = '...', replace = '...' }` regex substitutions, each checked now."""
        if not isinstance(value, list):
            self.fail(tname, key, "expected a list of { pattern = '...', replace = '...' }")
        return [self._rewrite(tname, key, r) for r in value]

    def _rewrite(self, tname: str, key: str, r) -> tuple[re.Pattern, str]:
        if not isinstance(r, dict) or set(r) != {"pattern", "replace"} or not all(isinstance(v, str) for v in r.values()):
            self.fail(tname, key, f"each rewrite is {{ pattern = '...', replace = '...' }}, got {r!r}")
        pattern = self.regex(tname, key, r["pattern"])
        try:
            _check_template(pattern, r["replace"])
        except (re.error, IndexError) as exc:
            self.fail(tname, key, f"bad replacement {r['replace']!r} ({exc})")
        return pattern, r["replace"]


def _check_template(pattern: re.Pattern, repl: str) -> None:
    """A bad group reference in a replacement fails at load time, not on the first matching URL."""
    try:
        from re import _parser
    except ImportError:  # Python 3.10: sre_parse
        import sre_parse as _parser
    try:
        _parser.parse_template(repl, pattern)
    except (AttributeError, TypeError):  # an interpreter whose private parser differs: checked at run time
        pass
