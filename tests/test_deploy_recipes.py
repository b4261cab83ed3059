"""The deployment recipes in deploy/ (docs/deploy.md), checked without Docker or a cluster:

- compose.yaml against the Compose specification's schema (check-jsonschema's vendored copy);
- the Kubernetes manifests against Kubernetes' own schemas (kubernetes-validate, strict: an
  unknown field is an error), and the RayCluster's pod templates too, as PodTemplates;
- the RayCluster against the fields KubeRay's CRD requires (its schema ships with KubeRay's Helm
  chart, not with any package installable here, so the test names those fields itself);
- every TAILOR_* variable the recipes and docs set is a setting, with a value Settings accepts
  (Settings ignores unknown variables, so a renamed setting would otherwise pass silently);
- what the Dockerfile copies exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tailor.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))
DOCS = (REPO / "docs" / "deploy.md", REPO / "docs" / "metrics.md")
KUBERNETES_VERSION = "1.30.0"  # the oldest version the manifests promise to work on (docs/deploy.md)


def kubernetes_validate():
    try:
        import kubernetes_validate
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("kubernetes-validate is not installed (pip install -e '.[dev]')")
    return kubernetes_validate


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_compose_file_follows_the_compose_specification():
    checked = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                              str(DEPLOY / "compose.yaml")], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"api-1", "api-2", "ray-head", "ray-worker", "postgres", "minio"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
    build = services["api-1"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    # The API servers share one TAILOR_HOME (and one database): the jobs' files are everyone's.
    assert services["api-1"]["volumes"] == services["api-2"]["volumes"]


def test_kubernetes_manifests_follow_kubernetes_schemas():
    validate = kubernetes_validate()
    kinds = []
    for path in K8S:
        for doc in documents(path):
            kinds.append(doc["kind"])
            if doc["apiVersion"] == "ray.io/v1":
                # The CRD's schema is not here; the pod templates inside are Kubernetes' own.
                for template in _ray_templates(doc):
                    validate.validate({"apiVersion": "v1", "kind": "PodTemplate",
                                       "metadata": {"name": doc["metadata"]["name"]}, "template": template},
                                      KUBERNETES_VERSION, strict=True)
            else:
                validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert sorted(kinds) == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "RayCluster", "Secret", "Service"]

    # The validator refuses what a typo would produce (the check can fail).
    with pytest.raises(validate.ValidationError):
        validate.validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                           "spec": {"ports": [{"port": "eighty"}]}}, KUBERNETES_VERSION, strict=True)


def _ray_templates(cluster: dict) -> list[dict]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"], *(group["template"] for group in spec["workerGroupSpecs"])]


def test_raycluster_has_what_kuberay_requires():
    [cluster] = documents(DEPLOY / "k8s" / "raycluster.yaml")
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["kind"] == "RayCluster"
    spec = cluster["spec"]
    head = spec["headGroupSpec"]
    groups = spec["workerGroupSpecs"]
    # rayStartParams: a map of strings (the CRD's type; `num-cpus: 0` unquoted is refused by the API server).
    for params in [head["rayStartParams"], *(group["rayStartParams"] for group in groups)]:
        assert isinstance(params, dict) and all(isinstance(value, str) for value in params.values()), params
    assert len({group["groupName"] for group in groups}) == len(groups)
    for group in groups:
        assert all(isinstance(group[key], int) for key in ("replicas", "minReplicas", "maxReplicas")), group
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]
    for template in _ray_templates(cluster):
        # KubeRay runs Ray in the first container, with the image's `ray` command.
        container = template["spec"]["containers"][0]
        assert container["image"] and container["name"]
        assert any(source.get("configMapRef", {}).get("name") == "tailor-config" for source in container["envFrom"])

    # The executor's address is the head service KubeRay creates: <cluster name>-head-svc, dashboard port.
    config = next(doc for doc in documents(DEPLOY / "k8s" / "config.yaml") if doc["kind"] == "ConfigMap")
    assert config["data"]["TAILOR_RAY_ADDRESS"] == f"http://{cluster['metadata']['name']}-head-svc:8265"


def _compose_value(value: str) -> str:
    """``${NAME:-default}`` as Compose interpolates it with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))


def recipe_environment() -> dict[str, dict[str, str]]:
    """Every TAILOR_* variable each recipe sets: ``{recipe: {name: value}}``."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    found = {}
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        found[f"compose:{name}"] = {key: _compose_value(value) for key, value in environment.items()
                                    if key.startswith("TAILOR_")}
    kubernetes = {}
    for path in K8S:
        for doc in documents(path):
            kubernetes.update({key: value for key, value in {**doc.get("data", {}), **doc.get("stringData", {})}.items()
                               if key.startswith("TAILOR_")})
    found["kubernetes"] = kubernetes
    found["Dockerfile"] = dict(re.findall(r"\b(TAILOR_[A-Z0-9_]+)=(\S+)", (DEPLOY / "Dockerfile").read_text()))
    return found


def test_every_variable_the_recipes_set_is_a_setting_with_a_valid_value(monkeypatch, tmp_path):
    recipes = recipe_environment()
    assert recipes["compose:api-1"]["TAILOR_EXECUTOR"] == "ray" and recipes["kubernetes"]["TAILOR_EXECUTOR"] == "ray"
    documented = {name for doc in DOCS for name in re.findall(r"\bTAILOR_[A-Z0-9_]+\b", doc.read_text())}
    names = documented.union(*(environment.keys() for environment in recipes.values()))
    unknown = sorted(name for name in names if name.removeprefix("TAILOR_").lower() not in Settings.model_fields)
    assert not unknown, f"not settings (tailor/settings.py): {unknown}"

    # Each recipe's values as Settings reads them: a JSON list, a number, ray among the executors.
    for recipe, environment in recipes.items():
        with monkeypatch.context() as patch:
            for key in [key for key in os.environ if key.startswith("TAILOR_")]:
                patch.delenv(key)
            for key, value in environment.items():
                patch.setenv(key, value)
            patch.setenv("TAILOR_HOME", str(tmp_path))  # the recipes' /var/lib/tailor is not writable here
            try:
                Settings()
            except ValueError as error:
                raise AssertionError(f"{recipe}: {error}") from None


def test_the_dockerfile_copies_what_exists_and_runs_as_no_root():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        for source in line.split()[:-1]:
            assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "download.pytorch.org/whl/cpu" in text and "-c constraints.txt" in text
    assert '".[postgres,ray]"' in text
    assert re.search(r'^CMD \["tailor", "serve"', text, re.MULTILINE)
    # The Dockerfile's own ignore file keeps the build context to what is copied.
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "*" in ignored and {"!tailor/", "!pyproject.toml", "!constraints.txt", "!README.md"} <= set(ignored)
