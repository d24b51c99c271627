"""List pagination: opaque nextCursor, page size from `catalog.page_size`, invalid cursor -> -32602."""

from __future__ import annotations

import pytest
from harness import fixture_tools


def test_tools_list_pages_follow_next_cursor_until_the_end(backends, start_gateway, connect):
    a = backends.v2("a", extra_tools=7, start=False)
    b = backends.v2("b", start=False)
    backends.ready(a, b)
    gw = start_gateway([a.config(), b.config()], catalog={"page_size": 5})
    client = connect(gw)

    pages = []
    params = None
    for _ in range(50):
        result = client.result("tools/list", params)
        pages.append([t["name"] for t in result["tools"]])
        cursor = result.get("nextCursor")
        if not cursor:
            break
        assert isinstance(cursor, str)
        params = {"cursor": cursor}

    names = [n for page in pages for n in page]
    expected = sorted({f"a_{t}" for t in fixture_tools("a", extra=7)} | {f"b_{t}" for t in fixture_tools("b")})
    assert names == expected, "pages concatenated must be the full sorted list, no gaps or repeats"
    assert all(len(p) == 5 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 5
    assert len(pages) == -(-len(expected) // 5)


def test_paging_twice_gives_the_same_pages(backends, start_gateway, connect):
    a = backends.v2("a", extra_tools=4)
    gw = start_gateway([a.config()], catalog={"page_size": 4})

    first, pages1 = connect(gw).list_all("tools/list", "tools")
    second, pages2 = connect(gw).list_all("tools/list", "tools")

    assert first == second and pages1 == pages2 > 1


@pytest.mark.parametrize(
    ("method", "key"),
    [("prompts/list", "prompts"), ("resources/list", "resources"), ("resources/templates/list", "resourceTemplates")],
)
def test_other_lists_paginate_too(backends, start_gateway, connect, method, key):
    a, b = backends.pair()
    gw = start_gateway([a.config(), b.config()], catalog={"page_size": 1})

    items, pages = connect(gw).list_all(method, key)

    assert len(items) == 2 and pages == 2


@pytest.mark.parametrize("cursor", ["not-a-cursor", "0" * 300])
def test_invalid_cursor_is_rejected_with_invalid_params(backends, start_gateway, connect, cursor):
    a = backends.v2("a")
    gw = start_gateway([a.config()], catalog={"page_size": 3})

    reply = connect(gw).request("tools/list", {"cursor": cursor})

    assert "error" in reply, reply
    assert reply["error"]["code"] == -32602
