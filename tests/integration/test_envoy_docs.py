"""The examples in docs/envoy.md are checked, not just shown: every YAML block parses; the
Envoy bootstrap and the filter snippets load into Envoy's official protos (xds-protos), so a
misspelt field or enum fails here; the mcpgate configs pass `mcpgate check`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2

# Registers the typed_config messages the examples name, so Any fields resolve.
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2  # noqa: F401
from envoy.extensions.filters.http.ext_proc.v3 import ext_proc_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401
from google.protobuf import json_format
from harness import REPO
from idp import es256_key_pair

DOC = REPO / "docs" / "envoy.md"


def blocks() -> dict[str, str]:
    """YAML blocks whose first line is `# file: NAME`, by NAME."""
    out = {}
    for body in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S):
        m = re.match(r"# file: (\S+)", body)
        if m:
            out[m.group(1)] = body
    return out


def test_every_yaml_block_parses():
    bodies = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert len(bodies) >= 7
    for body in bodies:
        assert [d for d in yaml.safe_load_all(body) if d is not None], body[:80]


def test_the_envoy_bootstrap_loads_into_envoys_protos():
    doc = yaml.safe_load(blocks()["envoy-bootstrap.yaml"])
    bootstrap = json_format.ParseDict(doc, bootstrap_pb2.Bootstrap())

    (listener,) = bootstrap.static_resources.listeners
    manager = hcm.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    names = [f.name for f in manager.http_filters]
    assert names == ["envoy.filters.http.ext_proc", "envoy.filters.http.ext_authz", "envoy.filters.http.router"]
    proc = ext_proc_pb2.ExternalProcessor()
    manager.http_filters[0].typed_config.Unpack(proc)
    assert not proc.failure_mode_allow and proc.mutation_rules.allow_all_routing.value
    assert proc.processing_mode.request_body_mode == proc.processing_mode.BUFFERED
    authz = ext_authz_pb2.ExtAuthz()
    manager.http_filters[1].typed_config.Unpack(authz)
    assert not authz.failure_mode_allow and authz.with_request_body.pack_as_bytes
    hosts = {vh.name: list(vh.domains) for vh in manager.route_config.virtual_hosts}
    assert hosts["codereview"][0] == "codereview.local" and hosts["mcpgate"] == ["*"]
    clusters = {c.name for c in bootstrap.static_resources.clusters}
    assert {"mcpgate_envoy", "mcpgate", "codereview", "github", "weather"} <= clusters


def test_a_misspelt_field_would_fail_the_bootstrap_check():
    text = blocks()["envoy-bootstrap.yaml"].replace("message_timeout:", "message_timout:")
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(yaml.safe_load(text), bootstrap_pb2.Bootstrap())


def test_the_filter_snippets_load_as_http_filters():
    json_format.ParseDict(yaml.safe_load(blocks()["ext-authz-http.yaml"]), hcm.HttpFilter())
    docs = list(yaml.safe_load_all(blocks()["istio.yaml"]))
    envoy_filter = next(d for d in docs if d["kind"] == "EnvoyFilter")
    json_format.ParseDict(envoy_filter["spec"]["configPatches"][0]["patch"]["value"], hcm.HttpFilter())
    assert {d["kind"] for d in docs} == {"EnvoyFilter", "IstioOperator", "AuthorizationPolicy", "VirtualService"}


def test_the_gateway_api_and_kuadrant_examples_name_the_right_pieces():
    kinds = {d["kind"] for d in yaml.safe_load_all(blocks()["gateway-api.yaml"])}
    assert kinds == {"Gateway", "HTTPRoute", "EnvoyExtensionPolicy", "SecurityPolicy", "NetworkPolicy"}
    policy = yaml.safe_load(blocks()["kuadrant-authpolicy.yaml"])
    band = policy["spec"]["rules"]["response"]["success"]["headers"]["x-authorized-tools"]["wristband"]
    assert "allowed-tools" in band["customClaims"], "the claim mcpgate's wristband source (format: tools) reads"
    assert band["signingKeyRefs"][0]["algorithm"] == "ES256"


@pytest.mark.parametrize("name", ["mcpgate-envoy.yaml", "mcpgate-kuadrant.yaml"])
def test_the_mcpgate_configs_pass_check(name: str, mcpgate_bin: Path, tmp_path: Path):
    priv, pub = es256_key_pair(tmp_path, "docs")
    text = blocks()[name].replace("/etc/mcpgate/wristband.key.pem", str(priv)).replace("/etc/mcpgate/authorino-wristband.pub.pem", str(pub))
    path = tmp_path / name
    path.write_text(text)
    env = {**os.environ, "VAULT_TOKEN": "t", "MCPGATE_CLIENT_SECRET": "s"}
    out = subprocess.run([str(mcpgate_bin), "check", "--config", str(path)], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("config OK")


def test_the_config_keys_in_the_doc_exist(mcpgate_bin: Path, tmp_path: Path):
    """A wrong key in the envoy section is refused with its path (so the doc cannot drift)."""
    path = tmp_path / "bad.yaml"
    path.write_text("envoy:\n  grpc_listen: 127.0.0.1:9100\n  headers: {tool_name: x}\n")
    out = subprocess.run([str(mcpgate_bin), "check", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "envoy.headers" in out.stdout and "tool_name" in out.stdout
