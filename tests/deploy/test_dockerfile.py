"""The Dockerfile lints clean and agrees with the project: torch pin, start command, port, probes.

No Docker engine is needed: hadolint reads the file, and the other tests read it through the
small parser in conftest.py and compare what it would run with pyproject.toml, the Makefile,
the app's settings and the app's routes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version


def test_hadolint_passes(find_tool, repo):
    hadolint = find_tool("hadolint")
    result = subprocess.run([hadolint, "Dockerfile"], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_really_linting(find_tool, tmp_path):
    """A control, so that a stub or a misread file cannot pass the check above."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([find_tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3008" in result.stdout


def torch_pin(pyproject: dict) -> Requirement:
    return next(r for r in map(Requirement, pyproject["project"]["dependencies"]) if r.name == "torch")


def test_torch_version_satisfies_the_pyproject_pin(dockerfile, pyproject):
    version = dockerfile.global_args["TORCH_VERSION"]
    pin = torch_pin(pyproject)
    assert Version(version) in pin.specifier, f"Dockerfile torch {version} vs pyproject {pin}"


def test_gpu_variant_is_the_official_pytorch_image_of_that_version(dockerfile):
    version = dockerfile.global_args["TORCH_VERSION"]
    base = dockerfile.chain(dockerfile.final)[0]
    assert base.name == "base-gpu"
    assert re.fullmatch(rf"pytorch/pytorch:{re.escape(version)}-cuda[\d.]+-cudnn\d+-runtime", base.base)


def test_cpu_variant_installs_the_cpu_torch_wheel_of_that_version(cpu_dockerfile):
    base = cpu_dockerfile.chain(cpu_dockerfile.final)[0]
    assert base.name == "base-cpu"
    assert base.base.startswith("python:")
    (install,) = base.all("RUN")
    assert '"torch==${TORCH_VERSION}"' in install.args
    assert "--index-url https://download.pytorch.org/whl/cpu" in install.args


def test_runtime_refuses_a_torch_that_pip_swapped(dockerfile):
    """After `pip install`, the build asserts torch is still the pinned version."""
    install = dockerfile.final.all("RUN")[0].args
    assert "pip install /wheels/*.whl" in install
    assert "torch.__version__.split('+')[0] == '${TORCH_VERSION}'" in install


def test_project_is_installed_from_pyproject_in_a_build_stage(dockerfile, repo):
    build = dockerfile.stage("build")
    copied = " ".join(i.args for i in build.all("COPY"))
    assert "pyproject.toml" in copied
    assert [i.args for i in build.all("RUN")] == ["pip wheel --no-deps --wheel-dir /wheels ."]
    assert not list(repo.glob("requirements*.txt")), "dependencies live in pyproject.toml only"
    # The runtime stage gets the wheel, not the source tree or the build backend.
    final_copies = [i.args for i in dockerfile.final.all("COPY")]
    assert all("model" not in c and "app" not in c and "pyproject" not in c for c in final_copies)


def make_serve_command(repo: Path) -> str:
    """The program the Makefile's `serve` target (the README's quick start) runs."""
    makefile = (repo / "Makefile").read_text()
    recipe = re.search(r"^serve:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe, "the Makefile has no serve target"
    last_line = recipe.group(1).strip().splitlines()[-1]
    return Path(last_line.split()[0]).name


def test_start_command_is_the_readmes(dockerfile, repo, pyproject):
    readme = (repo / "README.md").read_text()
    assert "make serve" in readme, "the README's quick start starts the server with `make serve`"
    command = make_serve_command(repo)
    assert command in pyproject["project"]["scripts"], f"{command} is not a console script"
    assert dockerfile.final.last("ENTRYPOINT") is None
    assert dockerfile.exec_form("CMD") == [command]


def test_exposed_port_is_the_port_the_server_listens_on(dockerfile):
    from app.settings import Settings

    env = dockerfile.env()
    exposed = [int(p.split("/")[0]) for i in dockerfile.final.all("EXPOSE") for p in i.args.split()]
    assert exposed == [int(env["CAPSNET_PORT"])] == [Settings.model_fields["port"].default]
    assert env["CAPSNET_HOST"] == "0.0.0.0", "the default 127.0.0.1 is unreachable from outside"


def test_healthcheck_asks_a_route_the_app_serves_without_curl(dockerfile, app_serves):
    options, command = dockerfile.healthcheck()
    assert command[:2] == ["python", "-c"], "urllib in Python: the image has no curl"
    (path,) = re.findall(r"http://127\.0\.0\.1:%s(/\w+)", command[2])
    assert path == "/healthz" and app_serves(path)
    assert set(options) >= {"interval", "timeout", "start-period", "retries"}


def test_settings_come_from_the_environment(dockerfile):
    from app.settings import Settings

    env = dockerfile.env()
    settings = {name for name in env if name.startswith("CAPSNET_")}
    known = {f"CAPSNET_{name.upper()}" for name in Settings.model_fields}
    assert settings <= known, f"unknown settings: {settings - known}"
    Settings.model_validate({name[len("CAPSNET_") :].lower(): env[name] for name in settings})


def test_shipped_weights_are_copied_where_the_setting_points(dockerfile, repo):
    env = dockerfile.env()
    (copy,) = [i.args.split() for i in dockerfile.final.all("COPY") if "weights/" in i.args]
    *flags, source, destination = copy
    assert "--chmod=755" in flags, "readable by the service user even if the file was 0600 here"
    weights = Path(env["CAPSNET_WEIGHTS"])
    assert weights.parent == Path(destination)
    assert (repo / source / weights.name).is_file()
    assert (repo / source / weights.with_suffix(".json").name).is_file(), "the model card travels along"


def test_runs_as_a_non_root_user(dockerfile):
    user = dockerfile.final.last("USER")
    assert user is not None
    uid = user.args.split(":")[0]
    assert uid not in {"root", "0"}
    useradd = " ".join(i.args for i in dockerfile.final.all("RUN"))
    assert f"--uid {uid}" in useradd


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context (last matching rule wins)."""

    def matches(pattern: str, candidate: str) -> bool:
        regex = re.escape(pattern.rstrip("/"))
        regex = regex.replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        return re.fullmatch(regex, candidate) is not None

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if any(matches(pattern.lstrip("!"), prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_out_venvs_caches_data_and_checkpoints(repo):
    lines = (repo / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for kept_out in [
        ".venv/bin/python",
        "data/mnist/train-images-idx3-ubyte",
        "runs/capsnet/last.pt",
        "model/__pycache__/capsnet.cpython-311.pyc",
        ".pytest_cache/v/cache",
        "tests/app/test_predict.py",
        ".git/HEAD",
        "weights/epoch-3.pt",
    ]:
        assert dockerignored(kept_out, patterns), kept_out
    for needed in [
        "pyproject.toml",
        "README.md",
        "model/capsnet.py",
        "app/main.py",
        "app/static/index.html",
        "weights/capsnet-mnist.safetensors",
        "weights/capsnet-mnist.json",
    ]:
        assert not dockerignored(needed, patterns), needed
