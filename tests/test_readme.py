"""The README is what a new user follows: its test command must be the one CI runs, and
it must document every option of the build command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_test_command_is_what_ci_runs():
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command.startswith("python3.11 -m venv .venv")
    assert ci_command in README


def test_readme_documents_every_build_option():
    source = (ROOT / "headless" / "build.py").read_text()
    parser_options = set(re.findall(r'add_argument\(\s*"(--[a-z-]+)"', source))
    assert {"--output", "--size", "--quality", "--n-gpus", "--blender"} <= parser_options
    missing = sorted(o for o in parser_options if f"`{o}" not in README)
    assert not missing, f"README does not document {missing}"
