"""docker-compose.yml is valid Compose and runs the image the way the service needs.

Validation uses the Compose specification's JSON schema vendored in check-jsonschema
(`--builtin-schema vendor.compose-spec`): nothing is downloaded at test time.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml


@pytest.fixture(scope="module")
def compose(repo) -> dict:
    return yaml.safe_load((repo / "docker-compose.yml").read_text())


def check_compose_schema(find_tool, *files) -> subprocess.CompletedProcess:
    command = [find_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True)


def test_compose_file_validates_against_the_compose_spec(find_tool, repo):
    result = check_compose_schema(find_tool, repo / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_rejects_a_misspelt_key(find_tool, repo, tmp_path):
    """A control: the schema is really applied to services (a typo there must fail)."""
    broken = tmp_path / "docker-compose.yml"
    text = (repo / "docker-compose.yml").read_text()
    broken.write_text(text.replace("stop_grace_period:", "stop_grace_periods:", 1))
    assert check_compose_schema(find_tool, broken).returncode != 0


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|s|m|h)", duration))


def test_gpu_service_reserves_one_nvidia_gpu(compose):
    gpu = compose["services"]["capsnet"]
    assert "profiles" not in gpu, "a plain `docker compose up` starts the GPU service"
    assert gpu["build"]["args"]["VARIANT"] == "gpu"
    assert gpu["environment"]["CAPSNET_DEVICE"] == "cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}


def test_cpu_service_builds_the_cpu_variant_without_a_gpu(compose):
    cpu = compose["services"]["capsnet-cpu"]
    assert cpu["profiles"] == ["cpu"], "only started when asked for"
    assert cpu["build"]["args"]["VARIANT"] == "cpu"
    assert cpu["environment"]["CAPSNET_DEVICE"] == "cpu"
    assert "deploy" not in cpu


@pytest.mark.parametrize("service", ["capsnet", "capsnet-cpu"])
def test_service_is_ready_checked_restarted_and_drained(compose, dockerfile, app_serves, service):
    spec = compose["services"][service]
    assert spec["restart"] in {"unless-stopped", "always", "on-failure"}
    health = spec["healthcheck"]
    assert health["test"][:3] == ["CMD", "python", "-c"], "no curl in the image"
    (path,) = re.findall(r"http://127\.0\.0\.1:\d+(/\w+)", health["test"][3])
    assert path == "/readyz" and app_serves(path)
    assert seconds(health["start_period"]) >= 60, "model loading and warm-up take time"
    env = spec["environment"]
    assert seconds(spec["stop_grace_period"]) > float(env["CAPSNET_DRAIN_SECONDS"])
    assert env["CAPSNET_HOST"] == "0.0.0.0"
    (port,) = spec["ports"]
    assert port.rsplit(":", 1)[1] == env["CAPSNET_PORT"] == dockerfile.env()["CAPSNET_PORT"]
    assert f":{env['CAPSNET_PORT']}/readyz" in health["test"][3]


@pytest.mark.parametrize("service", ["capsnet", "capsnet-cpu"])
def test_weights_can_be_swapped_through_a_read_only_mount(compose, dockerfile, service):
    (volume,) = compose["services"][service]["volumes"]
    assert volume["read_only"] is True
    weights = compose["services"][service]["environment"]["CAPSNET_WEIGHTS"]
    assert weights == dockerfile.env()["CAPSNET_WEIGHTS"]
    assert weights.startswith(volume["target"] + "/")
    assert volume["source"] == "${CAPSNET_WEIGHTS_DIR:-./weights}"
