"""The shell commands the documentation shows, read out of the files a user reads.

Where commands are found:

- fenced code blocks tagged ``sh``, ``bash``, ``shell`` or ``console`` in ``README.md``,
  ``docs/*.md`` and ``examples/**/README.md``. In ``sh``/``bash``/``shell`` blocks every line
  that is not blank or a comment is a command (a trailing ``\\`` or an open quote continues it on
  the next line); in ``console`` blocks the lines starting with ``$ `` are commands and the lines
  under one, up to the next prompt, are its expected output;
- comments of ``examples/**/*.yaml`` indented by two spaces or more after the ``#`` (the way
  Markdown indents code), e.g. ``#   modelplane agents create ...``.

A block without a tag must not hold commands (:func:`untagged_commands` finds those): tag it ``sh``
so that it is run.

A line is a **synopsis**, not a command, when it has a placeholder: an unquoted word that is all
capitals (``PATH``, ``N``, ``NAME``; also as an option's value, ``--plot=PATH``, or one of
several choices, ``PATH|none``), or an optional part in brackets (``[--quick]``). A synopsis is
checked against the CLI's help instead of being run. ``$VAR`` is an environment variable, not a
placeholder, and anything inside quotes is data.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[2]
SHELL_TAGS = frozenset({"sh", "bash", "shell", "console"})
#: first words that make a line of an untagged block look like a command
COMMAND_WORDS = frozenset({"modelplane", "python", "curl", "./dev", "kubectl", "pip"})

_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)
_YAML_COMMAND = re.compile(r"^#\s{2,}(\S.*)$")
_PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*")


@dataclass(frozen=True)
class DocCommand:
    """One command as a document shows it."""

    where: str  # "docs/agents.md:168"
    text: str  # as written, comment and line continuations included: what the shell runs
    expected: tuple[str, ...] = ()  # output lines a console block shows under the command

    @property
    def command(self) -> str:
        """The command without its comment, on one line: how the test's tables name it."""
        return " ".join(strip_comment(self.text).replace("\\\n", " ").split())

    @property
    def is_synopsis(self) -> bool:
        return is_synopsis(self.command)


def documents(root: Path = ROOT) -> list[Path]:
    """The files whose commands a user copies, in reading order: README first."""
    docs = sorted((root / "docs").glob("*.md"))
    examples = sorted(root.glob("examples/**/README.md"))
    yamls = sorted(root.glob("examples/**/*.yaml"))
    return [root / "README.md", *examples, *docs, *yamls]


def extract(root: Path = ROOT) -> list[DocCommand]:
    found: list[DocCommand] = []
    for path in documents(root):
        name = path.relative_to(root).as_posix()
        text = path.read_text()
        if path.suffix == ".yaml":
            found += _from_yaml(name, text)
            continue
        for tag, body, line in _fences(text):
            if tag not in SHELL_TAGS:
                continue
            if tag == "console":
                found += _from_console(name, body, line)
            else:
                found += [DocCommand(f"{name}:{n}", cmd) for cmd, n in _logical_lines(body, line)]
    return found


def untagged_commands(root: Path = ROOT) -> list[str]:
    """``file:line: text`` of each line that looks like a command in a block that is not run."""
    found: list[str] = []
    for path in documents(root):
        if path.suffix != ".md":
            continue
        name = path.relative_to(root).as_posix()
        for tag, body, line in _fences(path.read_text()):
            if tag in SHELL_TAGS or tag not in ("", "text", "txt"):
                continue
            for offset, row in enumerate(body.splitlines()):
                words = row.split()
                if words and words[0] in COMMAND_WORDS:
                    found.append(f"{name}:{line + offset}: {row.strip()}")
    return found


def strip_comment(text: str) -> str:
    """The text up to an unquoted ``#`` that starts a word, as the shell reads a comment."""
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text.rstrip()


def is_synopsis(command: str) -> bool:
    lexer = shlex.shlex(command, posix=False)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # an unclosed quote: not a command a shell would run either
        return False
    for word in words:
        if word[:1] in "'\"":
            continue  # data
        if word.startswith("["):
            return True
        for part in re.split(r"[=|,:]", word):
            if _PLACEHOLDER.fullmatch(part):
                return True
    return False


def _fences(text: str) -> list[tuple[str, str, int]]:
    """(tag, body, line of the body's first row) of each fenced block."""
    return [
        (m.group(1).lower(), m.group(2), text[: m.start()].count("\n") + 2)
        for m in _FENCE.finditer(text)
    ]


def _continues(text: str) -> bool:
    """Whether a command goes on past this text: a trailing backslash or an open quote."""
    quote: str | None = None
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            break  # a comment (the line's rest) cannot open a quote
    return quote is not None or strip_comment(text).endswith("\\")


def _logical_lines(body: str, first_line: int) -> list[tuple[str, int]]:
    commands: list[tuple[str, int]] = []
    pending: list[str] = []
    start = first_line
    for offset, row in enumerate(body.splitlines()):
        if not pending:
            if not row.strip() or row.lstrip().startswith("#"):
                continue
            start = first_line + offset
        pending.append(row)
        joined = "\n".join(pending)
        if not _continues(joined):
            commands.append((joined, start))
            pending = []
    if pending:
        commands.append(("\n".join(pending), start))
    return commands


def _from_console(name: str, body: str, first_line: int) -> list[DocCommand]:
    found: list[DocCommand] = []
    rows = body.splitlines()
    i = 0
    while i < len(rows):
        if not rows[i].startswith("$ "):
            i += 1
            continue
        start, text = first_line + i, rows[i][2:]
        i += 1
        while _continues(text) and i < len(rows):
            text += "\n" + rows[i].removeprefix("> ")
            i += 1
        output: list[str] = []
        while i < len(rows) and not rows[i].startswith("$ "):
            if rows[i].strip():
                output.append(rows[i].rstrip())
            i += 1
        found.append(DocCommand(f"{name}:{start}", text, tuple(output)))
    return found


def _from_yaml(name: str, text: str) -> list[DocCommand]:
    found: list[DocCommand] = []
    for n, row in enumerate(text.splitlines(), start=1):
        m = _YAML_COMMAND.match(row)
        command = m.group(1).removeprefix("$ ") if m else ""
        if command.split()[:1] and command.split()[0] in COMMAND_WORDS:
            found.append(DocCommand(f"{name}:{n}", command))
    return found
