"""The package's layout: every module short enough to read whole, each opening with a docstring
whose first line says its one job."""

import ast
from pathlib import Path

import noisevision

PACKAGE = Path(noisevision.__file__).resolve().parent
MAX_LINES = 650


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_module_is_over_650_lines():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in modules()}
    long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not long, f"split these by job: {long}"


def test_every_module_says_its_job_in_its_first_docstring_line():
    silent = []
    for path in modules():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if path.name != "__main__.py" and not (doc and doc.splitlines()[0].strip()):
            silent.append(str(path.relative_to(PACKAGE)))
    assert not silent, f"no docstring saying what the module is for: {silent}"
