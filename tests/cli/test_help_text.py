"""Help at 80 columns reads cleanly: a flag shows no value type ("--json <bool>"), each
command's summary is one sentence on its line (no docstring line breaks leaking in),
arguments are named as the README names them."""

from __future__ import annotations

import re

import pytest

from tests.cli.run import putdesk


def test_command_list_has_one_line_per_command(env):
    r = putdesk(env | {"COLUMNS": "80"}, "--help")
    assert r.returncode == 0, r.stderr
    panel = r.stdout[r.stdout.index("─ Commands "):]
    rows = [line for line in panel.splitlines()[1:] if line.startswith("│")]
    assert len(rows) >= 19
    for row in rows:  # a continuation line would start with blanks where the name is
        assert re.match(r"│ [a-z][a-z-]+ +\S", row), row
    assert "<bool>" not in r.stdout and "--read-only " in r.stdout


@pytest.mark.parametrize("command", [["scan"], ["check"], ["execute"], ["roll", "approve"],
                                     ["resume-trading"], ["paper"]])
def test_flags_take_no_value_in_help(env, command):
    r = putdesk(env | {"COLUMNS": "80"}, *command, "--help")
    assert r.returncode == 0, r.stderr
    for flag in ("--json", "--help", "--verbose", "--stage", "--dry-run", "--yes", "--api",
                 "--reset", "--read-only-api"):
        for line in r.stdout.splitlines():
            if f" {flag} " in line:
                assert "<bool>" not in line and "<int>" not in line, line


def test_check_names_its_arguments_as_the_readme(env):
    r = putdesk(env | {"COLUMNS": "80"}, "check", "--help")
    assert "putdesk check [OPTIONS] {SYMBOL} {STRIKE} {EXPIRATION}" in r.stdout
