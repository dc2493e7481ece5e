"""Who claimed a notification: ``host:pid:start-time`` of the sending process. The start time
tells a reused pid apart, so a claim by a process that has died is recognised at once."""

from __future__ import annotations

import functools
import os
from pathlib import Path


def _host() -> str:
    """This machine's name, as gethostname(2) gives it (without loading the socket module
    into every command that opens the state)."""
    return os.uname().nodename


def process_token(pid: int) -> str | None:
    """host:pid:start-time of a live process (None when it does not run, or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    start = stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command name
    return f"{_host()}:{pid}:{start}"


@functools.cache
def this_process() -> str:
    """This process's token (cached: it cannot change while it runs)."""
    return process_token(os.getpid()) or f"{_host()}:{os.getpid()}:?"


def process_dead(token: str | None) -> bool:
    """True only when ``token`` names a process of this host that no longer runs."""
    if not token:
        return False
    host, _, rest = token.partition(":")
    pid, _, start = rest.partition(":")
    if host != _host() or not pid.isdigit() or start == "?":
        return False  # another machine's claim, or no /proc: only its age can tell
    return process_token(int(pid)) != token
