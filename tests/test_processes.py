"""Claim tokens: a claim by a process that has died on this host is seen at once, and only
then. Processes of another pid namespace (a container on the host's network has the host's
name) are never judged by this one's pids."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest

from wpnotify.state.processes import process_dead, process_token, this_process

CHILD = textwrap.dedent("""
    import sys
    from wpnotify.state.processes import this_process
    print(this_process(), flush=True)
    sys.stdin.read()  # until the test is done with it
""")


class Child(subprocess.Popen[str]):
    token = ""


def in_another_pid_namespace() -> Child:
    """A wpnotify process in a pid namespace of its own, with the host's name (as a
    container on the host's network has)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1) here")
    child = Child(
        [unshare, "--pid", "--fork", "--map-root-user", "--mount-proc", sys.executable, "-c",
         CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    assert child.stdout is not None
    child.token = child.stdout.readline().strip()
    if not child.token:
        child.kill()
        pytest.skip(f"no pid namespaces here: {child.communicate()[1].strip()}")
    return child


def test_a_live_process_of_another_pid_namespace_is_not_taken_for_dead() -> None:
    """Its pid, looked up here, is another process or none: without the namespace in the
    token, every worker beside it would take its claims over while it sends them."""
    child = in_another_pid_namespace()
    try:
        token = child.token
        assert token.split(":")[0] == this_process().split(":")[0]  # the same host name
        assert not process_dead(token), token  # alive, elsewhere: its claims stay its own
    finally:
        child.kill()
        child.wait()


def test_a_dead_process_of_this_namespace_is_seen_at_once() -> None:
    child = subprocess.Popen(["sleep", "30"])
    token = process_token(child.pid)
    assert token is not None and not process_dead(token)
    child.kill()
    child.wait()
    assert process_dead(token)
    # An older wpnotify's token (no namespace) is judged as before.
    assert process_dead(token.rpartition(":")[0])
    assert not process_dead(this_process().rpartition(":")[0])
