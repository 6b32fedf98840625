"""The CPU image, emulated without Docker: build, start, health-check, predict, stop.

What a `docker build --build-arg VARIANT=cpu` followed by `docker run` would do, step by step,
with the commands taken from the Dockerfile itself rather than restated here:

1. a fresh virtual environment stands in for the base image's Python;
2. the Dockerfile's `RUN` lines are run in it, in build order: the CPU torch install, the build
   stage's `pip wheel` (in a directory holding only what the build stage COPYs) and the runtime's
   `pip install` of that wheel with its torch check;
3. the CMD is started with the final stage's ENV, only the host and port changed (to a free
   loopback port) and the image paths mapped onto this machine;
4. the HEALTHCHECK command is run until it passes, then /readyz is awaited, one PNG is posted to
   /v1/predict, and SIGTERM must end the server with exit code 0.

The one liberty: the CPU torch wheel comes from pip's configured sources here (this machine's
find-links) instead of the PyTorch index the Dockerfile names, which this machine cannot reach.
Takes about 2 minutes on 2 busy cores, most of it installing torch.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from PIL import Image, ImageDraw

from app.testing import free_port, wait_ready

START_TIMEOUT_S = 120
INSTALL_TIMEOUT_S = 600
CPU_INDEX = re.compile(r"\s--index-url\s+https://download\.pytorch\.org/whl/cpu")


def install_steps(dockerfile) -> list[tuple[str, str]]:
    """(stage, shell command) for every RUN that installs something, in build order."""
    base_cpu, build, runtime = (dockerfile.stage(n) for n in ["base-cpu", "build", "runtime"])
    runtime_runs = [i.args for i in runtime.all("RUN")]
    # Creating the user needs root and changes nothing a test can see; everything else must run.
    assert [r for r in runtime_runs if not r.startswith("--mount")] == [
        r for r in runtime_runs if r.startswith("useradd")
    ], "a new RUN in the runtime stage: teach this emulation about it"
    steps = [("base-cpu", i.args) for i in base_cpu.all("RUN")]
    steps += [("build", i.args) for i in build.all("RUN")]
    steps += [("runtime", re.sub(r"^--mount=\S+\s+", "", r)) for r in runtime_runs if r.startswith("--mount")]
    return [(stage, dockerfile.expand(command)) for stage, command in steps]


def build_context_copy(dockerfile, repo: Path, destination: Path) -> None:
    """The build stage's working directory: only what its COPY instructions bring in."""
    destination.mkdir()
    for copy in dockerfile.stage("build").all("COPY"):
        *sources, target = copy.args.split()
        for source in sources:
            origin = repo / source
            if origin.is_dir():
                shutil.copytree(origin, destination / target, ignore=shutil.ignore_patterns("__pycache__"))
            else:  # files are copied into a directory (`COPY a b ./`)
                shutil.copy2(origin, destination / target / origin.name)


def container_env(dockerfile, venv: Path, root: Path, repo: Path, port: int) -> dict[str, str]:
    """The final stage's ENV, image paths mapped here, listening on a loopback port."""
    (weights_copy,) = [i.args.split() for i in dockerfile.final.all("COPY") if "weights/" in i.args]
    *_, weights_source, weights_target = weights_copy
    image_paths = {weights_target.rstrip("/"): str(repo / weights_source.rstrip("/")), "/tmp": str(root)}
    env = {}
    for name, value in dockerfile.env().items():
        for image_path, here in image_paths.items():
            if value == image_path or value.startswith(image_path + "/"):
                value = here + value[len(image_path) :]
                break
        env[name] = value
    assert env["CAPSNET_HOST"] == "0.0.0.0"  # what the image binds; here only loopback is ours
    env |= {"CAPSNET_HOST": "127.0.0.1", "CAPSNET_PORT": str(port)}
    env |= {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "VIRTUAL_ENV": str(venv), "LANG": "C.UTF-8"}
    return env


def digit_png() -> bytes:
    """A hand-drawn-looking 7, white ink on black, as MNIST digits are."""
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line([(7, 6), (21, 6), (13, 23)], fill=255, width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def wait_for_healthcheck(command: list[str], env: dict, server: subprocess.Popen, log: Path) -> int:
    """Runs the HEALTHCHECK command until it exits 0; returns how many tries that took."""
    deadline = time.monotonic() + START_TIMEOUT_S
    for attempt in range(1, 10_000):
        assert server.poll() is None, f"the server exited with {server.returncode}:\n{log.read_text()}"
        if subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 0:
            return attempt
        assert time.monotonic() < deadline, f"HEALTHCHECK never passed:\n{log.read_text()}"
        time.sleep(1)
    raise AssertionError("unreachable")


def test_cpu_image_installs_starts_passes_its_healthcheck_predicts_and_stops_cleanly(
    cpu_dockerfile, repo, pyproject, tmp_path
):
    from app.settings import Settings

    venv, root = tmp_path / "venv", tmp_path / "container-tmp"
    root.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    build_env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    build_env |= cpu_dockerfile.env(cpu_dockerfile.stage("base"))
    build_env |= {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    context, wheels = tmp_path / "src", tmp_path / "wheels"
    build_context_copy(cpu_dockerfile, repo, context)

    for stage, command in install_steps(cpu_dockerfile):
        command = CPU_INDEX.sub("", command).replace("/wheels", str(wheels))
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=context,
            env=build_env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        assert result.returncode == 0, f"{stage}: {command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"

    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=freeze"], capture_output=True, text=True, check=True
    ).stdout
    assert not re.search(r"^nvidia-", installed, re.MULTILINE), "the CPU variant installed CUDA packages"
    train_extra = pyproject["project"]["optional-dependencies"]["train"]
    training_only = {re.split(r"[<>=~\[]", requirement)[0].lower() for requirement in train_extra}
    installed_names = {line.split("==")[0].lower() for line in installed.splitlines()}
    assert not training_only & installed_names, "the serving image installed the training extra"

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import app, model; print(app.__file__, model.__file__)"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(f).is_relative_to(venv) for f in where), f"not served from the installed wheel: {where}"

    port = free_port()
    env = container_env(cpu_dockerfile, venv, root, repo, port)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(cpu_dockerfile.exec_form("CMD"), cwd=root, env=env, stdout=out, stderr=out)
    try:
        _, healthcheck = cpu_dockerfile.healthcheck()
        wait_for_healthcheck(healthcheck, env, server, log)
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, server, START_TIMEOUT_S, log)

        response = httpx2.post(
            f"{base_url}/v1/predict", files={"file": ("seven.png", digit_png(), "image/png")}, timeout=60
        )
        assert response.status_code == 200, response.text
        (prediction,) = response.json()["predictions"]
        assert prediction["digit"] in range(10) and len(prediction["scores"]) == 10

        server.send_signal(signal.SIGTERM)
        drain = float(env.get("CAPSNET_DRAIN_SECONDS", Settings.model_fields["drain_seconds"].default))
        assert server.wait(timeout=drain + 30) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(venv, ignore_errors=True)  # 1 GB; pytest keeps the last runs' tmp_path
