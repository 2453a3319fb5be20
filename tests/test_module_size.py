"""No module of the package is over 500 lines: a file that grows past it holds several jobs, and the
piece that grew moves into a module of its own (STYLE.md: small modules with names that explain)."""

from __future__ import annotations

from pathlib import Path

import fewforge

MAX_LINES = 500


def test_no_module_is_over_500_lines():
    package = Path(fewforge.__file__).parent
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in package.rglob("*.py")}
    assert len(sizes) > 50  # the walk found the package
    over = sorted(f"{path.relative_to(package.parent)} ({n})" for path, n in sizes.items() if n > MAX_LINES)
    assert not over, f"modules over {MAX_LINES} lines (split the piece that grew into its own module): {', '.join(over)}"
