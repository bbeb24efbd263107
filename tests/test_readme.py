"""The README's Python code passes the project's linter, as ``make lint`` would check it.

A block introduced by a line naming a ``.py`` file (the "Add a method" and "Add a model" recipes) is what a
reader saves as that file: it is written to a file of that name and checked with every rule of
pyproject.toml. The other Python blocks are lines to type into a session, not files: they are checked for
what would break when typed (syntax, undefined or unused names: ruff's F rules), not for the layout of a
module (import blocks spaced as isort spaces them, two blank lines before a class)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^( *)```python\s*$")
FILE_NAME = re.compile(r"`([\w/.-]+\.py)`")


def python_blocks(text: str) -> list[dict]:
    """Every fenced Python block: its section heading, the file its introducing line names (or None) and
    its code, dedented by the fence's own indentation (blocks inside list items are indented)."""
    lines, blocks, heading = text.splitlines(), [], ""
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            heading = lines[i].lstrip("#").strip()
        fence = FENCE.match(lines[i])
        if fence:
            indent, start = fence.group(1), i
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"
                       and lines[j].startswith(indent))
            before = next((x for x in reversed(lines[:start]) if x.strip()), "")
            named = FILE_NAME.findall(before)
            code = textwrap.dedent("\n".join(lines[start + 1:end])) + "\n"
            blocks.append({"section": heading, "file": named[-1] if named else None, "code": code})
            i = end
        i += 1
    return blocks


BLOCKS = python_blocks((ROOT / "README.md").read_text())


def _ruff() -> str:
    ruff = Path(sys.executable).parent / "ruff"
    found = str(ruff) if ruff.exists() else shutil.which("ruff")
    assert found, "ruff is not installed; fix: pip install -e '.[dev]' (make test installs it)"
    return found


def _lint(path: Path, *extra: str) -> subprocess.CompletedProcess:
    # run from the repository with its pyproject.toml, so unlearn_bench and baselines count as first-party
    return subprocess.run([_ruff(), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"), *extra,
                           str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_recipes_are_found_as_files():
    files = {b["section"]: b["file"] for b in BLOCKS if b["file"]}
    assert files.get("Add a method") == "baselines/my_method.py", files
    assert files.get("Add a model") == "unlearn_bench/models/my_net.py", files


@pytest.mark.parametrize("block", [b for b in BLOCKS if b["file"]], ids=lambda b: b["file"])
def test_a_block_meant_as_a_file_passes_the_projects_lint(block, tmp_path):
    path = tmp_path / Path(block["file"]).name
    path.write_text(block["code"])
    r = _lint(path)
    assert r.returncode == 0, f"README block for {block['file']} ({block['section']}):\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if not b["file"]],
                         ids=lambda b: re.sub(r"\W+", "_", b["section"]))
def test_a_fragment_is_valid_code_with_every_name_defined(block, tmp_path):
    path = tmp_path / "fragment.py"
    path.write_text(block["code"])
    r = _lint(path, "--select", "F")
    assert r.returncode == 0, f"README fragment in {block['section']}:\n{r.stdout}{r.stderr}"


def test_the_linter_run_here_catches_a_badly_spaced_import(tmp_path):
    """The check above can fail: the README's old spacing (no blank lines after the imports) is refused."""
    path = tmp_path / "bad.py"
    path.write_text("from torch import nn\n\ndef f() -> nn.Module:\n    return nn.Identity()\n")
    r = _lint(path)
    assert r.returncode != 0 and "I001" in r.stdout
