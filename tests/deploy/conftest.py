"""Fixtures for the deployment tests: the Dockerfile read into stages, the app's routes, tools.

The Dockerfile reader understands what our Dockerfile uses (line continuations, comments,
parser directives, `ARG` defaults substituted into `FROM`, `ENV k=v` lists, exec-form `CMD` and
`HEALTHCHECK`), so the tests can ask it the questions a reviewer would: which torch, which
command, which port, which health-check URL.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV...
    args: str  # the rest of the (joined) line
    line: int


@dataclass
class Stage:
    name: str
    base: str  # image or stage name, ARGs substituted
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations; drop comments and blank lines (as BuildKit does)."""
    lines, current, start = [], "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if not current:
            start = number
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append((start, current + stripped))
        current = ""
    if current:
        lines.append((start, current))
    return lines


def substitute(text: str, variables: dict[str, str]) -> str:
    """Expand `${NAME}` and `$NAME` the way a build would with these ARG values."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: variables.get(m.group(1) or m.group(2), m.group(0)),
        text,
    )


class Dockerfile:
    def __init__(self, text: str, build_args: dict[str, str] | None = None):
        self.global_args: dict[str, str] = {}
        self.build_args = build_args or {}
        self.stages: list[Stage] = []
        for line, logical in _logical_lines(text):
            keyword, _, args = logical.partition(" ")
            keyword, args = keyword.upper(), args.strip()
            if keyword == "FROM":
                self._add_stage(args)
            elif not self.stages and keyword == "ARG":
                name, _, default = args.partition("=")
                self.global_args[name] = default.strip("\"'")
            elif self.stages:
                self.stages[-1].instructions.append(Instruction(keyword, args, line))

    def expand(self, text: str) -> str:
        """`text` with the build's ARG values substituted (defaults, then --build-arg)."""
        return substitute(text, {**self.global_args, **self.build_args})

    def _add_stage(self, args: str) -> None:
        words = [w for w in args.split() if not w.startswith("--")]
        base = self.expand(words[0])
        name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(self.stages))
        self.stages.append(Stage(name=name, base=base))

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, outermost (the image) first."""
        names = {s.name for s in self.stages}
        chain = [stage]
        while chain[0].base in names:
            chain.insert(0, self.stage(chain[0].base))
        return chain

    def env(self, stage: Stage | None = None) -> dict[str, str]:
        """ENV seen by a stage, including what it inherits from the stages it is built FROM."""
        env: dict[str, str] = {}
        for s in self.chain(stage or self.final):
            for instruction in s.all("ENV"):
                for pair in shlex.split(instruction.args):
                    name, _, value = pair.partition("=")
                    env[name] = value
        return env

    def exec_form(self, keyword: str, stage: Stage | None = None) -> list[str]:
        """CMD/ENTRYPOINT in exec (JSON) form; shell form is refused (no signals for the server)."""
        instruction = (stage or self.final).last(keyword)
        assert instruction is not None, f"no {keyword} in the final stage"
        command = json.loads(instruction.args)
        assert isinstance(command, list), f"{keyword} must be exec form so SIGTERM reaches the server"
        return command

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """(options, command) of the final stage's HEALTHCHECK; the command in exec form."""
        instruction = self.final.last("HEALTHCHECK")
        assert instruction is not None, "no HEALTHCHECK in the final stage"
        options = dict(re.findall(r"--([\w-]+)=(\S+)", instruction.args))
        _, _, command = instruction.args.partition(" CMD ")
        return options, json.loads(command)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def dockerfile_text() -> str:
    return (REPO / "Dockerfile").read_text()


@pytest.fixture(scope="session")
def dockerfile(dockerfile_text: str) -> Dockerfile:
    """The Dockerfile as built by default (`docker build .`)."""
    return Dockerfile(dockerfile_text)


@pytest.fixture(scope="session")
def cpu_dockerfile(dockerfile_text: str) -> Dockerfile:
    """The Dockerfile as built with `--build-arg VARIANT=cpu`."""
    return Dockerfile(dockerfile_text, {"VARIANT": "cpu"})


@pytest.fixture(scope="session")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="session")
def app_serves():
    """Whether the app object `capsnet-serve` runs has a route for (path, method).

    Asks the routes themselves (as Starlette does for a request), so routers included with
    prefixes count and nothing has to be loaded or started.
    """
    from starlette.routing import Match

    from app.main import app

    def serves(path: str, method: str = "GET") -> bool:
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
        return any(route.matches(scope)[0] == Match.FULL for route in app.routes)

    assert not serves("/no-such-route"), "the route check must be able to say no"
    return serves


@pytest.fixture(scope="session")
def find_tool():
    """Find a console tool of the test extras (beside this Python or on PATH), or skip saying so."""

    def find(name: str) -> str:
        beside = Path(sys.executable).parent / name
        found = str(beside) if beside.exists() else shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed: `pip install -e '.[test]'` provides it")
        return found

    return find
