"""Socket guard for the offline test: any connection that is not to loopback raises (and is logged)."""
import os
import socket

_LOG = os.environ.get("CARECITE_NET_LOG")
_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo


def _record(what: str) -> None:
    if _LOG:
        with open(_LOG, "a") as f:
            f.write(what + "\n")


def _is_local(host) -> bool:
    return isinstance(host, str) and (host in ("localhost", "::1", "") or host.startswith("127.") or host.startswith("/"))


def _connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(host):
        _record(f"connect {address}")
        raise OSError(f"network blocked by test guard: {address}")
    return _real_connect(self, address)


def _getaddrinfo(host, *args, **kw):
    if host is not None and not _is_local(host if isinstance(host, str) else host.decode()):
        _record(f"getaddrinfo {host}")
        raise socket.gaierror(f"network blocked by test guard: {host}")
    return _real_getaddrinfo(host, *args, **kw)


socket.socket.connect = _connect
socket.getaddrinfo = _getaddrinfo
