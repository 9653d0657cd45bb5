"""Channel targets: one server as it is, several as one round-robin ``ipv4:``/``ipv6:`` target."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

ROUND_ROBIN_SERVICE_CONFIG = '{"loadBalancingConfig": [{"round_robin": {}}]}'
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest message the client sends or accepts (the server enforces its own request cap)."""


def split_servers(servers: str | Sequence[str]) -> list[str]:
    """``"a:1, b:2"`` or ``["a:1", "b:2"]`` → ``["a:1", "b:2"]`` (blanks and repeats dropped)."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    out: list[str] = []
    for item in items:
        address = item.strip()
        if address and address not in out:
            out.append(address)
    if not out:
        raise ValueError("no server address given")
    return out


def _host_port(address: str) -> tuple[str, int]:
    """Split ``host:port`` / ``[v6]:port`` / ``ipv4:host:port``; the port is required."""
    for scheme in ("ipv4:", "ipv6:", "dns:///", "dns:"):
        if address.startswith(scheme):
            address = address[len(scheme) :]
            break
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        port_text = rest[1:] if sep and rest.startswith(":") else ""
    else:
        host, _, port_text = address.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"server address {address!r} is not host:port")
    return host, int(port_text)


def _resolve(host: str, port: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """One address of ``host``: the first IPv4 one when it has any, else the first IPv6 one."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve server host {host!r}: {exc.strerror}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    v4 = [a for a in addresses if a.version == 4]
    if v4:
        return v4[0]
    if addresses:
        return addresses[0]
    raise ValueError(f"cannot resolve server host {host!r}: no address")


def grpc_target(servers: str | Sequence[str]) -> str:
    """The gRPC target for one or several servers.

    One address is returned as it is (gRPC's default DNS resolver handles it). Several become
    one ``ipv4:`` (or ``ipv6:``) target listing every server's IP and port, which a channel with
    the round-robin policy (:func:`channel_options`) balances calls over; host names are resolved
    here first (IPv4 preferred). Raises ValueError for a malformed address, an unresolvable host,
    or a mix of IPv4-only and IPv6-only servers (gRPC targets take one family).
    """
    addresses = split_servers(servers)
    if len(addresses) == 1:
        return addresses[0]
    resolved = [(_resolve(host, port), port) for host, port in map(_host_port, addresses)]
    families = {ip.version for ip, _ in resolved}
    if len(families) > 1:
        raise ValueError("servers mix IPv4 and IPv6 addresses; give them all in one family")
    endpoints: list[str] = []
    for ip, port in resolved:
        endpoint = f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}"
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    if len(endpoints) == 1:
        return endpoints[0]
    scheme = "ipv4" if families == {4} else "ipv6"
    return f"{scheme}:{','.join(endpoints)}"


def channel_options() -> list[tuple[str, Any]]:
    """Channel options: round-robin load balancing and 64 MiB message limits."""
    return [
        ("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
