"""The README's variable table, the compose file, the Kubernetes example and the Grafana
dashboard agree with the code: no setting undocumented, no example naming a variable
or metric that does not exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from connector.config import Settings
from connector.observability import Metrics

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCUMENTED = set(re.findall(r"^\| `([A-Z][A-Z0-9_<>]+)` \|", README, re.M))
SETTINGS = {f.alias for f in Settings.model_fields.values() if f.alias}
SECRET_FILES = {"DATABASE_PASSWORD_FILE"}


def known(name: str) -> bool:
    return (name in SETTINGS or name in SECRET_FILES or name.startswith(("KAFKA_", "SCHEMA_REGISTRY_"))
            or name == "SINK_TABLE_<NAME>_<SETTING>")


def test_every_setting_is_in_the_readme_table():
    assert set() == SETTINGS - DOCUMENTED
    assert {n for n in DOCUMENTED if not known(n)} == set()


def test_compose_and_kubernetes_use_real_settings():
    compose = yaml.safe_load((ROOT / "docker/compose.yaml").read_text())
    names = set(compose["services"]["connector"]["environment"]) | set(compose["services"]["producer"]["environment"])
    docs = list(yaml.safe_load_all((ROOT / "docker/k8s/eos-connector.yaml").read_text()))
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    sidecar = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "eos-connector")
    names |= set(config_map["data"]) | {e["name"] for e in sidecar["env"]}
    assert {n for n in names if not known(n)} == set()
    assert sidecar["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_dashboard_uses_real_metrics():
    exported = set()
    for family in Metrics().registry.collect():
        exported |= {family.name} | {s.name for s in family.samples}  # labelled families have no samples yet
    dashboard = json.loads((ROOT / "docker/grafana-dashboard.json").read_text())
    used = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"eos_[a-z_]+", t["expr"])}
    assert used and used - exported == set()
    assert b"eos_" in generate_latest(Metrics().registry)
