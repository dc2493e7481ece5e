"""The README's first command, `wordpress/devsite.py demo`, run as a user runs it: two real
WordPress blogs on 127.0.0.2 and .3, a post published, its pingback and trackback sent, the
target blog's wpnotify judging the two pings, the editor's rows. The demo is the user's first
look at wpnotify: it must keep working, and say what happened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readmes_demo_runs_and_shows_every_step(wordpress_ready: None,
                                                     tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "wordpress" / "devsite.py"), "demo",
                           "--workdir", str(tmp_path / "demo")],
                          capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "demo: read 1 post(s), 2 new notification(s)" in out
    assert "sent 2, skipped 0, failed 0, waiting to retry 0" in out
    assert "target: inbound: 2 new ping(s); 1 verified, 1 unverified" in out
    assert "pingback  from 'Linking to the target" in out and ", now approved" in out
    assert "trackback from 'Demo source blog'" in out and ", now marked spam" in out
    inbound = out.split("==> wpnotify inbound", 1)[1]
    assert "trackback  unverified  spam" in inbound and "pingback   verified    approved" in inbound
    editor = out.split("==> what the post's editor shows", 1)[1]
    assert "pingback  sent" in editor and "trackback sent" in editor
    assert "Traceback" not in proc.stderr
