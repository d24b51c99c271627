"""/healthz, /readyz, /status, and names withheld from the catalog."""

from __future__ import annotations

import httpx
from harness import wait_until


def test_healthz_is_ok(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])

    r = httpx.get(gw.base + "/healthz")

    assert r.status_code == 200
    assert r.text.strip() == "ok"


def test_readyz_is_200_with_a_ready_backend(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config()])

    assert httpx.get(gw.base + "/readyz").status_code == 200


def test_readyz_is_503_while_no_backend_is_ready_and_healthz_stays_ok(backends, start_gateway):
    late = backends.v2("late", start=None)
    gw = start_gateway(
        [late.config(timeouts={"connect": "1s", "discovery": "2s"})], ready=[], catalog={"refresh_interval": "1s"}
    )

    assert httpx.get(gw.base + "/readyz").status_code == 503
    assert httpx.get(gw.base + "/healthz").status_code == 200

    late.start()
    wait_until(lambda: httpx.get(gw.base + "/readyz").status_code == 200, 30, what="/readyz 200 once late is up")


def test_readyz_ignores_disabled_servers(backends, start_gateway):
    a = backends.v2("a")
    gw = start_gateway([a.config(enabled=False)], ready=[])

    assert httpx.get(gw.base + "/readyz").status_code == 503


def test_status_reports_each_server_and_the_session_count(backends, start_gateway, connect):
    a = backends.v2("a", start=False)
    raw = backends.raw("rawsrv", start=False)
    backends.ready(a, raw)
    gw = start_gateway([a.config(), raw.config(), {"name": "off", "url": backends.dead_url(), "enabled": False}])
    sessions_before = gw.status()["sessions"]

    one, two = connect(gw), connect(gw)
    status = gw.status()

    by_name = {s["name"]: s for s in status["servers"]}
    assert set(by_name) == {"a", "rawsrv", "off"}
    expected_a = {
        "name": "a",
        "transport": "streamable_http",
        "enabled": True,
        "state": "ready",
        "tools": 11,
        "prompts": 1,
        "resources": 1,
        "resource_templates": 1,
        "last_error": None,
        "withheld": [],
    }
    assert {k: by_name["a"].get(k, "<missing>") for k in expected_a} == expected_a
    assert by_name["rawsrv"]["tools"] == 5 and by_name["rawsrv"]["prompts"] == 0
    assert by_name["off"]["enabled"] is False and by_name["off"]["state"] == "disabled"
    assert status["sessions"] == sessions_before + 2

    one.delete()
    assert gw.status()["sessions"] == sessions_before + 1
    assert two.tool_names()


def test_invalid_and_colliding_tool_names_are_withheld_and_reported(backends, start_gateway, connect):
    raw = backends.raw("raw", bad_names=True)
    gw = start_gateway([raw.config()])

    names = connect(gw).tool_names()
    status = gw.server_status("raw")

    assert {"raw_echo", "raw_lossless"} <= set(names)
    assert not any(" " in n for n in names), "names with a space must be withheld"
    assert all(len(n) <= 128 for n in names), "names over 128 characters must be withheld"
    assert names.count("raw_dup") <= 1, "two tools may not share an exposed name"
    withheld = status["withheld"]
    assert all(w["kind"] == "tool" and w["reason"] for w in withheld), withheld
    assert any("has space" in w["name"] for w in withheld)
    assert any("x" * 130 in w["name"] for w in withheld)
    assert any("dup" in w["name"] for w in withheld)
    assert "has space" in gw.stderr(), "a withheld name gets a log line"
