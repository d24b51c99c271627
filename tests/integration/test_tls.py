"""TLS on every side of the gateway, with a PKI made at test time (tests/integration/pki.py):

- the front door serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) to the official SDK client,
  optionally requires client certificates, and picks up a new certificate when its files
  change, keeping the old one (and saying why) when the new files are broken;
- a backend served over TLS is reached only with the right CA bundle, and one requiring a
  client certificate only with it; a wrong CA is a prompt error naming the server;
- OpenBao over TLS (`bao server -dev -dev-tls`) is reached with its CA bundle;
- `mcpgate check` names every unreadable or unusable TLS file by its key.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from harness import McpHttp, run_cli, tool_text, wait_until
from idp import OwnIssuer
from pki import Ca, client_context, served_fingerprint


@pytest.fixture
def ca(tmp_path):
    return Ca(tmp_path, "ca")


def tls_gateway(gateway, servers, ca: Ca, *, client_ca: Ca | None = None, client=None, **extra):
    """A gateway serving HTTPS with a certificate from `ca` (and requiring client certificates
    from `client_ca` when given); `client` is the certificate the harness presents."""
    issued = ca.issue("front")
    tls = {"cert_file": str(issued.cert), "key_file": str(issued.key)}
    if client_ca is not None:
        tls["client_ca_file"] = str(client_ca.path)
    gateway.scheme = "https"
    gateway.verify = client_context(ca.path, client)
    gateway.write_config(servers, tls=tls, **extra)
    gateway.start_with_config(ready=[s["name"] for s in servers])
    gateway.front = issued
    return gateway


def test_official_sdk_client_uses_the_tls_front_door(backends, gateway, ca):
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from sdk2 import run

    a = backends.v2("a")
    gw = tls_gateway(gateway, [a.config(era="legacy")], ca)

    async def scenario():
        async with Client(streamable_http_client(gw.url, http_client=httpx2.AsyncClient(verify=client_context(ca.path)))) as c:
            names = [t.name for t in (await c.list_tools()).tools]
            return names, await c.call_tool("a_echo", {"text": "over tls"})

    names, echoed = run(scenario)

    assert gw.url.startswith("https://127.0.0.1:")
    assert "a_echo" in names and echoed.content[0].text == "over tls"
    with pytest.raises(httpx.HTTPError):
        httpx.get(gw.url.replace("https://", "http://"), timeout=5)  # plain HTTP gets no answer
    with pytest.raises(httpx.ConnectError):
        httpx.get(gw.base + "/healthz", timeout=5)  # nor a client that does not trust the CA
    out = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(ca.path), "-m", "20", "-w", "\\n%{http_version}", gw.base + "/healthz"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.stdout.split("\n") == ["ok", "2"], out.stderr
    meta = httpx.get(gw.base + "/.well-known/oauth-protected-resource", verify=gw.verify, timeout=5)
    assert meta.status_code == 404  # no auth configured; the endpoint exists on the TLS port


def test_client_certificates_are_required_when_a_client_ca_is_configured(backends, gateway, ca, tmp_path):
    clients = Ca(tmp_path, "clients")
    good = clients.issue("caller", server=False)
    stranger = Ca(tmp_path, "stranger").issue("caller", server=False)
    a = backends.v2("a")
    gw = tls_gateway(gateway, [a.config(era="legacy")], ca, client_ca=clients, client=good)

    with_cert = McpHttp(gw.url)
    with_cert.http = httpx.Client(verify=client_context(ca.path, good), timeout=30)
    with_cert.initialize()

    assert "a_echo" in with_cert.tool_names()
    for who, ctx in {"no certificate": client_context(ca.path), "another CA's certificate": client_context(ca.path, stranger)}.items():
        with pytest.raises(httpx.HTTPError):
            httpx.get(gw.base + "/healthz", verify=ctx, timeout=5)
            pytest.fail(f"{who} was let in")
    assert gw.status()["connections"]["closed"]["tls_handshake"] >= 2


def test_certificate_files_are_reloaded_and_a_broken_one_keeps_the_old(backends, gateway, ca):
    a = backends.v2("a")
    gw = tls_gateway(gateway, [a.config(era="legacy")], ca)
    first = gw.front
    first_fp = first.fingerprint()
    kept_alive = McpHttp(gw.url)
    kept_alive.http = httpx.Client(verify=gw.verify, timeout=30)
    kept_alive.initialize()
    assert served_fingerprint(gw.port, ca.path) == first_fp

    first.cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    tls = wait_until(lambda: (t := gw.status()["connections"]["tls"])["failed_reloads"] >= 1 and t, 30, what="a failed reload")

    assert "tls.cert_file" in tls["last_error"] and str(first.cert) in tls["last_error"]
    assert served_fingerprint(gw.port, ca.path) == first_fp, "the previous certificate is still served"
    assert "keeping the previous certificate" in gw.stderr()

    second = ca.issue("front-2")
    first.key.write_bytes(second.key.read_bytes())
    first.cert.write_bytes(second.cert.read_bytes())
    wait_until(lambda: served_fingerprint(gw.port, ca.path) == second.fingerprint(), 30, what="the new certificate served")

    assert gw.status()["connections"]["tls"]["last_error"] is None
    assert "a_echo" in kept_alive.tool_names(), "a connection from before the reload still works"


def test_backend_over_tls_is_reached_only_with_the_right_ca(backends, gateway, ca, tmp_path):
    issued = ca.issue("backend")
    b = backends.v2("b", tls=(issued.cert, issued.key))
    wrong = Ca(tmp_path, "wrong")
    servers = [
        b.config(era="legacy", tls={"ca_file": str(ca.path)}),
        {**b.config(era="legacy", tls={"ca_file": str(wrong.path)}), "name": "w", "prefix": "w_"},
    ]
    gateway.write_config(servers)
    gw = gateway.start_with_config(ready=["b"])
    c = McpHttp(gw.url)
    c.initialize()

    assert b.url.startswith("https://")
    assert tool_text(c.call_tool("b_echo", {"text": "via tls"})["result"]) == "via tls"
    status = wait_until(lambda: (s := gw.server_status("w"))["last_error"] and s, 30, what="w's error in /status")
    assert status["state"] != "ready"
    assert "TLS handshake failed" in status["last_error"] and "certificate" in status["last_error"], status


def test_a_backend_rekeyed_by_an_untrusted_ca_fails_calls_promptly_naming_the_server(backends, gateway, ca, tmp_path):
    issued = ca.issue("backend")
    b = backends.v2("b", tls=(issued.cert, issued.key))
    gateway.write_config([b.config(era="legacy", tls={"ca_file": str(ca.path)})], catalog={"health_interval": "1h"})
    gw = gateway.start_with_config(ready=["b"])
    c = McpHttp(gw.url)
    c.initialize()
    assert tool_text(c.call_tool("b_echo", {"text": "before"})["result"]) == "before"

    rogue = Ca(tmp_path, "rogue").issue("backend")
    issued.cert.write_bytes(rogue.cert.read_bytes())
    issued.key.write_bytes(rogue.key.read_bytes())
    b.restart()  # same port, now presenting a certificate the gateway does not trust
    reply = c.call_tool("b_echo", {"text": "after"})

    message = reply["error"]["message"]
    assert "'b'" in message and "TLS handshake failed" in message and "certificate" in message, message
    assert not any('"after"' in e["body"] for e in b.log.find(rpc_method="tools/call")), "the call never reached the untrusted backend"


def test_backend_requiring_a_client_certificate_gets_the_configured_one(backends, gateway, ca, tmp_path):
    clients = Ca(tmp_path, "gateway-clients")
    gateway_cert = clients.issue("mcpgate", server=False)
    issued = ca.issue("backend")
    b = backends.v2("b", tls=(issued.cert, issued.key), client_ca=clients.path)
    with_cert = {"ca_file": str(ca.path), "cert_file": str(gateway_cert.cert), "key_file": str(gateway_cert.key)}
    servers = [
        b.config(era="legacy", tls=with_cert),
        {**b.config(era="legacy", tls={"ca_file": str(ca.path)}), "name": "n", "prefix": "n_"},
    ]
    gateway.write_config(servers)
    gw = gateway.start_with_config(ready=["b"])
    c = McpHttp(gw.url)
    c.initialize()

    assert tool_text(c.call_tool("b_echo", {"text": "mtls"})["result"]) == "mtls"
    status = wait_until(lambda: (s := gw.server_status("n"))["last_error"] and s, 30, what="n's error in /status")
    assert status["state"] != "ready", "without the client certificate the backend refuses the gateway"


def test_openbao_over_tls_is_read_with_its_ca_bundle(registry, backends, gateway, tmp_path):
    from vault import ROOT_TOKEN, bao_binary

    certs = tmp_path / "bao-tls"
    certs.mkdir()
    port = __import__("harness").free_port()
    registry.start(
        "bao-tls",
        [bao_binary(), "server", "-dev", "-dev-tls", f"-dev-tls-cert-dir={certs}", f"-dev-root-token-id={ROOT_TOKEN}",
         f"-dev-listen-address=127.0.0.1:{port}", "-dev-no-store-token"],
    )
    ca_file = certs / "vault-ca.pem"
    wait_until(lambda: ca_file.exists() and httpx.get(f"https://127.0.0.1:{port}/v1/sys/health", verify=str(ca_file), timeout=2).status_code == 200, 30, what="OpenBao over TLS")
    bao = httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=str(ca_file), headers={"X-Vault-Token": ROOT_TOKEN}, timeout=10)
    assert bao.post("/v1/secret/data/alice/a.local", json={"data": {"token": "alice-key-over-tls"}}).status_code == 200
    issuer = OwnIssuer(tmp_path)
    a = backends.v2("a")
    server = a.config(era="legacy", auth={"client_ids": ["a.local"]}, credentials=[{"vault": {"path": "{username}/a.local", "header": "X-API-Key"}}])
    vault = {"address": f"https://127.0.0.1:{port}", "auth": {"token": {"value": ROOT_TOKEN}}, "tls": {"ca_file": str(ca_file)}}
    gateway.write_config([server], auth={"issuers": [issuer.config()], "audiences": ["mcpgate"]}, credentials={"vault": vault})
    gw = gateway.start_with_config(ready=["a"])
    alice = McpHttp(gw.url)
    alice.http.headers["Authorization"] = f"Bearer {issuer.token()}"
    alice.initialize()

    assert "result" in alice.call_tool("a_echo", {"text": "x"})
    (call,) = a.log.find(rpc_method="tools/call", name="echo")
    assert call["headers"]["x-api-key"] == "alice-key-over-tls"


def test_check_names_each_broken_tls_file_by_its_key(mcpgate_bin, tmp_path, ca):
    good = ca.issue("front")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    config = tmp_path / "gateway.yaml"
    config.write_text(
        json.dumps(
            {
                "listen": "127.0.0.1:18999",
                "tls": {"cert_file": str(tmp_path / "missing.pem"), "key_file": str(good.key)},
                "servers": [
                    {"name": "b", "url": "https://127.0.0.1:1/mcp", "tls": {"ca_file": str(not_pem)}},
                    {"name": "c", "url": "https://127.0.0.1:2/mcp", "tls": {"cert_file": str(good.cert), "key_file": str(ca.issue("other").key)}},
                    {"name": "d", "url": "http://127.0.0.1:3/mcp", "tls": {"ca_file": str(ca.path)}},
                ],
            }
        )
    )

    out = run_cli(mcpgate_bin, ["check", "--config", str(config)])

    assert out.returncode == 1, out.stdout
    lines = out.stdout
    assert "tls.cert_file" in lines and "missing.pem" in lines
    assert "servers[0].tls.ca_file" in lines and "no PEM certificate" in lines
    assert "servers[1].tls.key_file" in lines and "does not fit" in lines
    assert "servers[2].tls" in lines and "https:// backends only" in lines
    assert "PRIVATE KEY" not in lines, "no key material in the output"


def test_the_gateway_refuses_to_start_with_a_key_that_does_not_fit(mcpgate_bin, tmp_path, ca):
    cert = ca.issue("front")
    other = ca.issue("other")
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps({"listen": "127.0.0.1:18998", "tls": {"cert_file": str(cert.cert), "key_file": str(other.key)}, "servers": []}))

    out = run_cli(mcpgate_bin, ["serve", "--config", str(config)], timeout=30)

    assert out.returncode == 1
    assert "tls.key_file" in out.stdout + out.stderr and "does not fit" in out.stdout + out.stderr
