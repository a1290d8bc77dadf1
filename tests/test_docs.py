"""The documentation cannot go stale: generated pages are current, the site builds with --strict,
and every shell command written in the README and the site exists as written (make targets,
modules and their flags: `python -m X --help` runs and lists each flag used)."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import REPO_ROOT
from scripts.generate_docs import stale_pages

# the README and every page of the site (the design notes under docs/design/ included)
DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]
# programs the docs name that are not the project's own; each is a well-known tool
EXTERNAL_TOOLS = {"curl", "pg_dump", "pg_restore", "source", "cp", "git", "cd", "ls", "cat", "mkdir",
                  "export", "sudo", "apt-get", "kill", "ss", "psql", "open", "xdg-open", "echo", "rm",
                  "head", "tail", "unzip", "docker-compose", "wget", "watch", "pytest",
                  ".venv/bin/pytest", "mlflow", ".venv/bin/mlflow"}
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell|console)\n(.*?)```", re.S)
INLINE = re.compile(r"`((?:make |python -m |\.venv/bin/python -m |python scripts/)[^`]*)`")
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|…")


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for every command in a shell block and every inline `make ...` /
    `python -m ...` of the README and the site (continuation lines joined, comments dropped)."""
    found: list[tuple[str, str]] = []
    for path in DOC_FILES:
        name = str(path.relative_to(REPO_ROOT))
        text = path.read_text()
        for block in SHELL_BLOCK.findall(text):
            pending = ""
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                pending = f"{pending}\n{line}" if pending else line
                if _unclosed_quote(pending):
                    continue  # a quoted argument over several lines (a JSON body)
                command = re.split(r"\s#\s", pending)[0].strip().removeprefix("$ ")
                pending = ""
                if command and not command.startswith("#"):
                    found.append((name, command))
        found += [(name, command) for command in INLINE.findall(text)]
    return found


def _unclosed_quote(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:
        return True
    return False


def _make_targets() -> set[str]:
    makefile = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:", makefile, re.M))


@functools.cache
def _help(module_and_words: tuple[str, ...]) -> tuple[int, str]:
    """Exit status and output of `python -m <module> [subcommand] --help`."""
    result = subprocess.run([sys.executable, "-m", *module_and_words, "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    return result.returncode, result.stdout + result.stderr


def problems_of(command: str) -> list[str]:
    """What is wrong with one documented command, as sentences (empty: it works as written)."""
    try:
        words = shlex.split(command)
    except ValueError as error:
        return [f"cannot be parsed as a shell command: {error}"]
    for separator in ("&&", "||", ";", "|"):
        if separator in words:
            cut = words.index(separator)
            return problems_of(shlex.join(words[:cut])) + problems_of(shlex.join(words[cut + 1:]))
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words = words[1:]  # VAR=value before the command
    if not words:
        return []
    program, arguments = words[0], words[1:]
    if program == "make":
        targets = _make_targets()
        return [f"make has no target '{w}'" for w in arguments
                if not w.startswith("-") and "=" not in w and w not in targets]
    if program in ("python", "python3", ".venv/bin/python") and arguments[:1] == ["-m"]:
        module, rest = arguments[1], arguments[2:]
        if PLACEHOLDER.search(module):  # `python -m bench.<name>`: the package must exist
            package = PLACEHOLDER.split(module)[0].rstrip(".")
            return [] if importlib.util.find_spec(package) else [f"no package {package}"]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            return [f"no module {module}"]
        if "ArgumentParser(" not in Path(spec.origin).read_text():
            # no command line of its own: running it with --help would run it
            return [f"`python -m {module}` takes no options, yet the docs give {rest}"] if any(
                w.startswith("-") for w in rest) else []
        subcommand = tuple(rest[:1]) if rest and not rest[0].startswith("-") else ()
        if subcommand and PLACEHOLDER.search(subcommand[0]):
            subcommand = ()
        status, output = _help((module, *subcommand))
        if status != 0:
            return [f"`python -m {module} {' '.join(subcommand)} --help` exits {status}: {output[-300:]}"]
        flags = {w.split("=")[0] for w in rest if w.startswith("--")}
        return [f"`python -m {module}` has no option {flag}" for flag in sorted(flags) if flag not in output]
    if program in ("python", "python3", ".venv/bin/python"):
        script = arguments[0] if arguments else ""
        return [] if (REPO_ROOT / script).is_file() else [f"no script {script}"]
    if program == "docker":
        files = [arguments[i + 1] for i, w in enumerate(arguments[:-1]) if w == "-f"]
        return [f"no compose file {f}" for f in files if not (REPO_ROOT / f).is_file()]
    if program in EXTERNAL_TOOLS:
        return []
    return [f"unknown program '{program}' (not the project's, not a known tool)"]


def test_the_generated_reference_pages_are_up_to_date() -> None:
    stale = [str(path.relative_to(REPO_ROOT)) for path in stale_pages()]
    assert not stale, f"out of date: {stale}; run `python -m scripts.generate_docs`"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").is_file()


def test_the_readme_is_a_front_page() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150, "the README is a front page: at most 150 lines"
    assert "make run" in readme and "make test" in readme


@pytest.mark.parametrize("command", sorted({c for _, c in documented_commands()}))
def test_every_documented_command_exists_as_written(command: str) -> None:
    where = sorted({f for f, c in documented_commands() if c == command})
    assert not problems_of(command), f"{where}: `{command}`: {problems_of(command)}"


def test_the_command_check_catches_what_is_wrong() -> None:
    assert problems_of("make no-such-target")
    assert problems_of("python -m scripts.no_such_module")
    assert problems_of("python -m scripts.generate_docs --no-such-flag")
    assert problems_of("frobnicate --now")
    assert not problems_of("make test")
    assert not problems_of("python -m scripts.generate_docs --check")
