"""Sending what is due: the dispatcher (``dispatch``) claims and sends, a pure decision
(``decide``) says what one attempt's result means, and the ``pinged`` mirror tells WordPress
what went out.

This package file stays empty of imports on purpose: the CLI calls ``tune()`` at start-up,
and a read-only command must not pay for the sending machinery it never uses.
"""

from __future__ import annotations

import sys

# This thread and the workers take turns on the interpreter lock; a worker busy with Python
# code keeps it up to the switch interval (5 ms by default), which, once per dispatch, left
# each host's connections idle that long. 1 ms: measured in bench/.
SWITCH_INTERVAL = 0.001  # seconds


def tune() -> None:
    """Process-wide settings the sending relies on, set once by the entry points (the CLI's
    ``main``, the daemon's start): a library must not change them behind its caller's back."""
    sys.setswitchinterval(SWITCH_INTERVAL)
