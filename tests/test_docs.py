"""Every command the docs show is run here, or marked as too long / needing a service, and every one is checked.

The docs (README.md and docs/*.md) show commands in ```console blocks: a line ``$ CMD`` (a trailing backslash
continues it on the next line), then the output the docs show, if any. A comment line sets how the commands below
it are treated, up to the next comment line or the end of the block:

- ``# long: <why, with the measured wall time>``: not run here (a paper-length run, a benchmark, a server);
- ``# needs: slicing serve running``: not run; every URL path it calls must be a route of ``serve_app.py``;
- ``# needs: <something else>`` (a ``ray up`` cluster, a trained checkpoint): not run;
- no marker: run here by bash, from the page's own fresh working folder (links to ``scenarios/`` and
  ``tune_configs/``, so ``out/`` lands under ``tmp_path``), in the order of the page, with a timeout. It must exit 0,
  or 2 when the docs show an ``error: ...`` line (which must then be on stderr). When the docs show a JSON object
  line, the last JSON line of stdout must have all of its keys. A command shown on several pages runs once (the
  first page's result is reused), so a command must not depend on files only its own page's earlier commands wrote.

So a ``$ slicing ...`` line that is neither marked nor runnable in seconds fails this test. Whether marked or not,
every ``slicing`` subcommand a command line names must exist (``slicing <cmd> --help`` exits 0), and every
``127.0.0.1:8000/...`` URL must be a route of the HTTP API.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from slicing.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
EXPECTED_PAGES = {"idla", "simulator", "data", "runtime", "http-api", "clusters", "rl", "transfer", "tune",
                  "microopt", "twin", "operators", "reproduce", "whatif"}
LINKED_DIRS = ("scenarios", "tune_configs", "cluster", "studies")  # what the commands read, relative to the root
TIMEOUT_S = 120  # per runnable command: longer ones belong under `# long:`
MAX_RUNNABLE = 20  # the bounded list: all runnable commands together take about a minute and a half on 2 cores
SERVE_MARKER = "slicing serve running"
URL = re.compile(r"(?:https?://)?(?:127\.0\.0\.1|localhost):8000(/[^\s'\"?]*)")


@dataclass
class Command:
    page: str
    line_no: int
    text: str  # the command, continuation lines joined
    marker: str | None  # "long: ...", "needs: ..." or None (runnable)
    output: list[str] = field(default_factory=list)  # the lines the docs show below it

    @property
    def runnable(self) -> bool:
        return self.marker is None

    def where(self) -> str:
        return f"{self.page}:{self.line_no}: $ {self.text}"


def complete(text: str) -> bool:
    """Whether a command's quotes are closed (a quoted JSON body may span lines)."""
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def parse_commands(page: str) -> list[Command]:
    """Every ``$`` line of the page's console blocks, with its marker and the output shown below it."""
    commands: list[Command] = []
    lines = (ROOT / page).read_text().splitlines()
    in_console, marker, current = False, None, None
    i = 0
    while i < len(lines):
        line, line_no = lines[i], i + 1
        i += 1
        if line.startswith("```"):
            in_console = line.strip() == "```console" and not in_console
            marker, current = None, None
            continue
        if not in_console:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            assert body, f"{page}:{line_no}: an empty comment line in a console block"
            marker = body if body.startswith(("long:", "needs:")) else None
            if marker is not None:
                assert marker.split(":", 1)[1].strip(), f"{page}:{line_no}: `# {marker}` must say why/how long"
            current = None
        elif line.startswith("$ "):
            text = line[2:]
            while (text.endswith("\\") or not complete(text)) and i < len(lines):  # continuation lines
                text = text[:-1].rstrip() + " " + lines[i].strip() if text.endswith("\\") else text + "\n" + lines[i]
                i += 1
            assert complete(text), f"{page}:{line_no}: unclosed quote in the command"
            current = Command(page, line_no, text.strip(), marker)
            commands.append(current)
        elif line.strip():
            assert current is not None, f"{page}:{line_no}: output without a `$` command above it: {line!r}"
            current.output.append(line)
    return commands


ALL = [command for page in PAGES for command in parse_commands(page)]


def serve_routes() -> list[re.Pattern[str]]:
    """The paths the HTTP API serves: the route decorators of serve_app.py, plus FastAPI's own pages."""
    text = (ROOT / "serve_app.py").read_text()
    paths = re.findall(r"\.(?:get|post|put|delete|patch)\(\s*\"(/[^\"]*)\"", text)
    paths += ["/openapi.json", "/docs"]
    return [re.compile("[^/]+".join(map(re.escape, re.split(r"\{[^}]+\}", path))) + "$") for path in paths]


def slicing_argv(text: str) -> list[list[str]]:
    """The argument lists of every ``slicing`` invocation of a command (after env assignments, `ray job submit --`)."""
    tokens = shlex.split(text.replace("|", " | ").replace(";", " ; "))
    found = []
    for k, token in enumerate(tokens):
        if token == "slicing" or token.endswith("/slicing"):
            rest = []
            for t in tokens[k + 1:]:
                if t in ("|", ";", "&&", "||", ">", "2>", "&"):
                    break
                rest.append(t)
            found.append(rest)
    return found


def subcommand_path(argv: list[str]) -> list[str]:
    """The command names at the start of ``argv`` (``bench serve``, ``agents list``); fails on an unknown one."""
    command, path = get_command(app), []
    for token in argv:
        subcommands = getattr(command, "commands", None)  # a group (typer vendors click: no isinstance check)
        if subcommands is None or token.startswith("-"):
            break
        if token not in subcommands and getattr(command, "invoke_without_command", False):
            break  # `slicing bench --cells ...`-style groups also take arguments of their own
        assert token in subcommands, f"`slicing {' '.join([*path, token])}` is not a command"
        command, path = subcommands[token], [*path, token]
    return path


def test_the_pages_exist_and_their_links_resolve() -> None:
    assert {Path(p).stem for p in PAGES if p.startswith("docs/")} >= EXPECTED_PAGES
    readme = (ROOT / "README.md").read_text()
    for page in PAGES:
        text = (ROOT / page).read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            assert ((ROOT / page).parent / target).exists(), f"{page}: broken link {target}"
        if page.startswith("docs/"):
            assert f"]({page})" in readme, f"README.md does not link {page}"
    assert len(readme.splitlines()) <= 200, "README.md is the front page: keep it short, put detail in docs/"


def test_every_command_is_runnable_or_marked_and_the_runnable_list_is_bounded() -> None:
    assert ALL, "no console commands found"
    runnable = [c for c in ALL if c.runnable]
    assert 0 < len(runnable) <= MAX_RUNNABLE, [c.where() for c in runnable]
    for command in ALL:
        if command.marker and command.marker.startswith("long:"):
            assert re.search(r"\d", command.marker), f"{command.where()}: give the measured wall time"


@pytest.mark.parametrize("invocation", sorted({" ".join(a) for c in ALL for a in slicing_argv(c.text)}))
def test_every_named_subcommand_exists(invocation: str) -> None:
    path = subcommand_path(shlex.split(invocation))
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, f"slicing {' '.join(path)} --help:\n{result.output}"


def test_urls_of_the_docs_are_routes_of_the_http_api() -> None:
    routes = serve_routes()
    assert any(r.match("/v1/cells/42/allocation") for r in routes)
    for command in ALL:
        paths = URL.findall(command.text)
        if command.marker == f"needs: {SERVE_MARKER}":
            assert paths, f"{command.where()}: marked as needing the service but calls no 127.0.0.1:8000 URL"
        for path in paths:
            assert any(r.match(path) for r in routes), f"{command.where()}: {path} is not a route of serve_app.py"


RESULTS: dict[str, subprocess.CompletedProcess[str]] = {}  # command text -> its result, run once per session


def run(command: Command, cwd: Path) -> subprocess.CompletedProcess[str]:
    if command.text in RESULTS:
        return RESULTS[command.text]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "COLUMNS": "200"}  # no wrapping of the one-line errors
    try:
        done = subprocess.run(["bash", "-c", command.text], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{command.where()}: over {TIMEOUT_S} s; mark it `# long: <measured time>`")
    RESULTS[command.text] = done
    return done


def last_json(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON line on stdout:\n{stdout[-2000:]}")


@pytest.mark.parametrize("page", [p for p in PAGES if any(c.runnable for c in parse_commands(p))])
def test_runnable_commands_of_a_page(page: str, tmp_path: Path) -> None:
    for name in LINKED_DIRS:
        (tmp_path / name).symlink_to(ROOT / name)
    for command in (c for c in parse_commands(page) if c.runnable):
        done = run(command, tmp_path)
        errors = [line for line in command.output if line.startswith("error:")]
        detail = f"{command.where()}\nexit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n" \
                 f"{done.stderr[-3000:]}"
        if errors:
            assert done.returncode == 2, detail
            for line in errors:
                assert " ".join(line.split()) in " ".join(done.stderr.split()), detail
            continue
        assert done.returncode == 0, detail
        for line in command.output:
            if line.startswith("{"):
                shown = json.loads(line)
                assert set(shown) <= set(last_json(done.stdout)), detail
