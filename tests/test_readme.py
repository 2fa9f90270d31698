"""The README is what a new user follows: its test command must be the one CI runs, it must
document every option of the build command, and its exit-code table must be the code's."""

import re
from pathlib import Path

from scenegen_addon.core import about
from scenegen_addon.launcher import options
from scenegen_addon.launcher.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_test_command_is_what_ci_runs():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_command = lines[lines.index("# The README's second command; keep the two identical.") + 1]
    assert ci_command.startswith("python3.13 -m venv .venv")
    assert ci_command in README


def test_readme_documents_every_build_option():
    names = {o for action in options.build_parser()._actions for o in action.option_strings
             if o.startswith("--") and o != "--help"}
    assert {"--output", "--size", "--quality", "--n-gpus", "--blender"} <= names
    missing = sorted(o for o in names if f"`{o}" not in README)
    assert not missing, f"README does not document {missing}"


def test_readme_exit_code_table_is_the_codes_table():
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", README, re.MULTILINE)
    assert [(int(code), text) for code, text in rows] == [(int(c), c.meaning) for c in ExitCode]


def test_readme_names_the_supported_and_tested_blenders():
    major_minor = ".".join(map(str, about.MIN_BLENDER[:2]))
    assert f"Supported: Blender {major_minor} or newer" in README
    for version in (*about.TESTED_BLENDER, *about.SEEN_WORKING_BLENDER):
        assert version in README
