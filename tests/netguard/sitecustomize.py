"""Test network guard: put this folder first on ``PYTHONPATH`` and set ``SPROUT_NETGUARD_REPORT=<file>``.

Every Python process started that way (the app server, a CLI command) refuses any connection that does
not stay on this machine and *reports* it: one JSON line per attempt in the report file (process id,
command, what was contacted, where in the code). Refused: ``connect``/``connect_ex``/``sendto`` to a
non-loopback address, and name look-ups (``getaddrinfo``, ``gethostbyname``) of anything but loopback
names and literal addresses. Binding and accepting (a server listening) are untouched.

Used by ``tests/test_offline.py`` and ``tests/browser/test_offline_app.py``; not part of the app.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import traceback

_REPORT = os.environ.get("SPROUT_NETGUARD_REPORT")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _report(what: str) -> None:
    stack = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack()[:-2]][-8:]
    line = json.dumps({"pid": os.getpid(), "argv": sys.argv[:3], "target": what, "stack": stack})
    try:
        with open(_REPORT, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError:
        pass


def _host_ok(host) -> bool:
    if host is None or host in ("", b""):
        return True  # a wildcard for bind()
    h = host.decode() if isinstance(host, bytes) else str(host)
    h = h.strip("[]").split("%")[0]
    if h.lower() in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False  # a name that would need a DNS look-up
    return ip.is_loopback or ip.is_unspecified


def _addr_ok(family, address) -> bool:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True  # unix sockets and the like stay on the machine
    host = address[0] if isinstance(address, tuple) else address
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return _host_ok(host)
    return ip.is_loopback


if _REPORT:
    _connect, _connect_ex, _sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto
    _getaddrinfo, _gethostbyname = socket.getaddrinfo, socket.gethostbyname
    _gethostbyname_ex = socket.gethostbyname_ex

    def connect(self, address):
        if not _addr_ok(self.family, address):
            _report(f"connect {address!r}")
            raise OSError(101, f"network guard: connection to {address!r} refused (Sprout must stay offline)")
        return _connect(self, address)

    def connect_ex(self, address):
        if not _addr_ok(self.family, address):
            _report(f"connect_ex {address!r}")
            return 101
        return _connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1]
        if not _addr_ok(self.family, address):
            _report(f"sendto {address!r}")
            raise OSError(101, f"network guard: datagram to {address!r} refused")
        return _sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):
        if not _host_ok(host):
            _report(f"getaddrinfo {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"network guard: look-up of {host!r} refused")
        return _getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host):
        if not _host_ok(host):
            _report(f"gethostbyname {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"network guard: look-up of {host!r} refused")
        return _gethostbyname(host)

    def gethostbyname_ex(host):
        if not _host_ok(host):
            _report(f"gethostbyname_ex {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"network guard: look-up of {host!r} refused")
        return _gethostbyname_ex(host)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
