"""Who claimed a notification: ``host:pid:start-time:pid-namespace`` of the sending process.
The start time tells a reused pid apart, so a claim by a process that has died is recognised
at once. The pid namespace tells apart processes that share a host name but not their pids:
containers on the host's network (docker --network host, a Kubernetes pod with hostNetwork)
have the host's name, and a pid of one means nothing in another."""

from __future__ import annotations

import functools
import os
from pathlib import Path


def _host() -> str:
    """This machine's name, as gethostname(2) gives it (without loading the socket module
    into every command that opens the state)."""
    return os.uname().nodename


@functools.cache
def _pid_space() -> str:
    """This process's pid namespace (the number of /proc/self/ns/pid), or "?" without it."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return "?"


def process_token(pid: int) -> str | None:
    """host:pid:start-time:namespace of a live process of this pid namespace (None when it
    does not run, or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    start = stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command name
    return f"{_host()}:{pid}:{start}:{_pid_space()}"


@functools.cache
def this_process() -> str:
    """This process's token (cached: it cannot change while it runs)."""
    return process_token(os.getpid()) or f"{_host()}:{os.getpid()}:?"


def process_dead(token: str | None) -> bool:
    """True only when ``token`` names a process of this host and pid namespace that no
    longer runs. A token without a namespace (an older wpnotify's) is judged by the rest."""
    if not token:
        return False
    host, _, rest = token.partition(":")
    pid, _, rest = rest.partition(":")
    start, _, space = rest.partition(":")
    if host != _host() or not pid.isdigit() or start == "?":
        return False  # another machine's claim, or no /proc: only its age can tell
    if space and space != _pid_space():
        return False  # another container's: its pid is not this one's to look up
    alive = process_token(int(pid))
    return alive is None or alive.split(":")[:3] != [host, pid, start]
