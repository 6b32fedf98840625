"""deploy/k8s validates against the Kubernetes schemas and fits the image and the app.

kubernetes-validate ships the schemas of each Kubernetes release; strict mode also rejects
unknown fields, so a misspelt probe or resource is caught, not silently ignored by a cluster.
"""

from __future__ import annotations

import pytest
import yaml

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed: `pip install -e '.[test]'`"
)

# The oldest release we claim to support (the preStop `sleep` action is on by default from 1.30)
# and the newest the validator knows.
KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]


@pytest.fixture(scope="module")
def manifests(repo) -> dict[str, dict]:
    """Every resource under deploy/k8s except the kustomization, by kind."""
    resources = {}
    for path in sorted((repo / "deploy" / "k8s").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for resource in yaml.safe_load_all(path.read_text()):
                resources[resource["kind"]] = resource
    return resources


@pytest.fixture(scope="module")
def container(manifests) -> dict:
    (container,) = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_against_the_kubernetes_schemas(manifests, version):
    assert set(manifests) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    for resource in manifests.values():
        kubernetes_validate.validate(resource, version, strict=True)


def test_validation_rejects_a_misspelt_field(manifests):
    """A control: strict validation really looks inside the pod template."""
    broken = yaml.safe_load(yaml.safe_dump(manifests["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest(repo):
    directory = repo / "deploy" / "k8s"
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    files = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_probes_ask_the_apps_endpoints(container, app_serves):
    probes = {kind: container[f"{kind}Probe"]["httpGet"] for kind in ["startup", "liveness", "readiness"]}
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startup": "/readyz",  # the model is loaded and warmed
        "liveness": "/healthz",  # the process answers
        "readiness": "/readyz",  # take traffic
    }
    assert all(app_serves(probe["path"]) for probe in probes.values())
    assert all(probe["port"] == "http" for probe in probes.values())


def test_container_port_is_the_images(container, dockerfile):
    (port,) = container["ports"]
    assert port["name"] == "http"
    assert port["containerPort"] == int(dockerfile.env()["CAPSNET_PORT"])
    assert env_of(container)["CAPSNET_PORT"] == dockerfile.env()["CAPSNET_PORT"]
    assert env_of(container)["CAPSNET_HOST"] == "0.0.0.0"


def test_one_gpu_per_replica(container):
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    assert env_of(container)["CAPSNET_DEVICE"] == "cuda", "fail loudly rather than run on CPU"


def test_termination_grace_outlasts_the_drain(manifests, container):
    from app.settings import Settings

    default_drain = Settings.model_fields["drain_seconds"].default
    drain = float(env_of(container).get("CAPSNET_DRAIN_SECONDS", default_drain))
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = manifests["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > pre_stop + drain


def test_runs_as_the_images_non_root_user(manifests, container, dockerfile):
    pod = manifests["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    image_uid = int(dockerfile.final.last("USER").args.split(":")[0])
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == image_uid
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}, "HOME and caches live in /tmp"


def test_service_and_autoscaler_point_at_the_deployment(manifests):
    deployment, service, hpa = (manifests[k] for k in ["Deployment", "Service", "HorizontalPodAutoscaler"])
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= 1 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]


def test_prometheus_scrape_annotations_name_the_metrics_route(manifests, container, app_serves):
    annotations = manifests["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert app_serves(annotations["prometheus.io/path"])
    assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]
