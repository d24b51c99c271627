"""The peer in the benchmark: FastMCP's proxy/aggregation mode in front of the same backends.

    peer_fastmcp.py PORT NAME=URL [NAME=URL ...]      (run with a venv that has fastmcp)

Serves Streamable HTTP on 127.0.0.1:PORT/mcp; tools appear as <name>_<tool>."""

import sys

from fastmcp.server import create_proxy


def main() -> None:
    port = int(sys.argv[1])
    servers = dict(arg.split("=", 1) for arg in sys.argv[2:])
    config = {"mcpServers": {name: {"url": url, "transport": "http"} for name, url in servers.items()}}
    create_proxy(config, name="fastmcp-peer").run(transport="http", host="127.0.0.1", port=port, path="/mcp", show_banner=False)


if __name__ == "__main__":
    main()
