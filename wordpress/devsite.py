"""Throwaway WordPress sites on loopback, for the demo, the tests and the benchmark.

Each site is Debian's packaged WordPress served by PHP's built-in server on its own loopback
address (``http://127.0.0.N:8080``), with its own MariaDB database and user, its own
``/etc/wordpress/config-127.0.0.N.php`` and its own must-use plugin folder. Needs root (it
writes under /etc/wordpress and /var/lib) and the packages that ``scripts/setup`` installs.

    python wordpress/devsite.py demo      # the README's first command runs this
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WP_ROOT = Path("/usr/share/wordpress")
ETC = Path("/etc/wordpress")
VAR = Path("/var/lib/wpnotify-devsite")
DB_PREFIX = "wpnotify_dev_"  # every database and user this module creates starts with it
MARK = "@@WPNOTIFY-DEVSITE@@"
#: WordPress's comment flood rule: a second ping to one site within 15 s gets HTTP 429 (a
#: trackback) or fault 429 (a pingback), whoever sends it (pings carry no e-mail address).
FLOOD_SECONDS = 15.0


class DevsiteError(RuntimeError):
    """A dev site could not be set up or reached."""


def mariadb(sql: str) -> str:
    """Runs SQL as MariaDB's root: over the socket (Debian's unix_socket login for the system
    root), else over TCP with an empty password (how CI machines are set up)."""
    proc = None
    for where in ([], ["-h127.0.0.1", "-P3306"]):
        proc = subprocess.run(
            ["mariadb", "-uroot", *where, "--batch", "--skip-column-names"],
            input=sql, capture_output=True, text=True, check=False,
        )
        if proc.returncode == 0:
            return proc.stdout
    raise DevsiteError(f"mariadb: {proc.stderr.strip() if proc else 'not run'}")


def ensure_mariadb(timeout: float = 30.0) -> None:
    """Starts MariaDB if nothing answers on 127.0.0.1:3306."""
    if port_open("127.0.0.1", 3306):
        return
    Path("/run/mysqld").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/mysqld", "mysql", "mysql")
    subprocess.Popen(["mariadbd", "--user=mysql"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port("127.0.0.1", 3306, timeout)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise DevsiteError(f"nothing answers on {host}:{port} after {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class Site:
    """One WordPress site at ``http://<host>:<port>``."""

    host: str
    title: str = "wpnotify test site"
    bridge: bool = False
    timezone: str = "UTC"
    permalinks: str = "/%year%/%monthnum%/%postname%/"
    port: int = 8080
    workers: int = 4
    extra_config: str = ""  # more PHP for its config file, e.g. "define('DISABLE_WP_CRON', true);"
    app_password: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    pinged_at: float = field(default=-FLOOD_SECONDS, repr=False)  # monotonic, last ping's end

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def slug(self) -> str:
        return self.host.replace(".", "_")

    @property
    def db(self) -> str:
        return DB_PREFIX + self.slug

    @property
    def root(self) -> Path:
        return VAR / self.host

    @property
    def log_path(self) -> Path:
        return self.root / "php-server.log"

    # --- set-up -------------------------------------------------------------------------

    def install(self) -> None:
        """Creates (or recreates) the site from nothing: database, config, plugins, install."""
        self.stop()
        if port_open(self.host, self.port):  # someone else's server: never pull its data away
            raise DevsiteError(f"{self.host}:{self.port} is in use by another process (another "
                               "test run or demo?); stop it first")
        ensure_mariadb()
        db_password = secrets.token_hex(12)
        mariadb(
            f"DROP DATABASE IF EXISTS `{self.db}`;\n"
            f"CREATE DATABASE `{self.db}` CHARACTER SET utf8mb4;\n"
            + "".join(
                f"CREATE USER IF NOT EXISTS '{self.db}'@'{h}';\n"
                f"ALTER USER '{self.db}'@'{h}' IDENTIFIED BY '{db_password}';\n"
                f"GRANT ALL ON `{self.db}`.* TO '{self.db}'@'{h}';\n"
                for h in ("localhost", "127.0.0.1")
            )
        )
        mu = self.root / "mu-plugins"
        shutil.rmtree(mu, ignore_errors=True)
        mu.mkdir(parents=True)
        shutil.copy(HERE / "devsite-loopback.php", mu / "devsite-loopback.php")
        if self.bridge:
            self.set_bridge(True)
        salts = "".join(
            f"define('{k}', '{secrets.token_hex(24)}');\n"
            for k in ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY",
                      "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")
        )
        ETC.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "<?php\n// Written by wpnotify's wordpress/devsite.py for a throwaway test site.\n"
            f"define('DB_NAME', '{self.db}');\ndefine('DB_USER', '{self.db}');\n"
            f"define('DB_PASSWORD', '{db_password}');\ndefine('DB_HOST', '127.0.0.1:3306');\n"
            f"define('WP_HOME', '{self.url}');\ndefine('WP_SITEURL', '{self.url}');\n"
            f"define('WPMU_PLUGIN_DIR', '{mu}');\n"
            f"define('WPMU_PLUGIN_URL', '{self.url}/wp-content/mu-plugins');\n"
            "define('WP_DEBUG', false);\n"
            # Test sites talk to loopback only: WordPress's own update checks, update-service
            # pings and any other request to the outside are refused before any DNS lookup.
            "define('WP_HTTP_BLOCK_EXTERNAL', true);\n"
            "define('WP_ACCESSIBLE_HOSTS', '127.0.0.*,localhost');\n"
            "define('AUTOMATIC_UPDATER_DISABLED', true);\n" + salts + self.extra_config + "\n"
        )
        self.php(
            f"""
            require_once ABSPATH . 'wp-admin/includes/upgrade.php';
            wp_install({php_str(self.title)}, 'admin', 'admin@example.invalid', true, '',
                       {php_str(secrets.token_hex(16))});
            update_option('permalink_structure', {php_str(self.permalinks)});
            update_option('timezone_string', {php_str(self.timezone)});
            update_option('gmt_offset', '');
            update_option('ping_sites', '');  // no Ping-o-Matic from a test site
            update_option('show_avatars', 0);  // and no Gravatar images in a test browser
            return true;
            """,
            installing=True,
        )
        self.app_password = self.php(
            """
            flush_rewrite_rules();
            [$password] = WP_Application_Passwords::create_new_application_password(
                1, ['name' => 'wpnotify']);
            return $password;
            """
        )

    @property
    def config_path(self) -> Path:
        return ETC / f"config-{self.host}.php"

    def set_bridge(self, present: bool) -> None:
        """Installs or removes the bridge, its PHP file and its folder of editor scripts, on
        a set-up site (takes effect on the next request)."""
        mu = self.root / "mu-plugins"
        shutil.rmtree(mu / "wpnotify-bridge", ignore_errors=True)
        if present:
            shutil.copy(HERE / "wpnotify-bridge.php", mu / "wpnotify-bridge.php")
            shutil.copytree(HERE / "wpnotify-bridge", mu / "wpnotify-bridge")
        else:
            (mu / "wpnotify-bridge.php").unlink(missing_ok=True)
        self.bridge = present

    # --- running ------------------------------------------------------------------------

    def start(self) -> None:
        if self.process and self.process.poll() is None:
            return
        if port_open(self.host, self.port):
            raise DevsiteError(f"{self.host}:{self.port} is already taken by another server")
        # The router serves the must-use plugins' scripts, which live outside WP_ROOT.
        env = dict(os.environ, PHP_CLI_SERVER_WORKERS=str(self.workers),
                   WPNOTIFY_DEVSITE_MU=str(self.root / "mu-plugins"))
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            ["php", "-S", f"{self.host}:{self.port}", "-t", str(WP_ROOT),
             str(HERE / "devsite-router.php")],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.host, self.port, 20)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)
        self.process = None

    def php_script(self, code: str, *, installing: bool = False) -> str:
        """A PHP CLI script that loads this site's WordPress, runs ``code`` (a function body)
        and prints a marker and what it returned, as JSON."""
        return (
            "<?php\n"
            f"$_SERVER['HTTP_HOST'] = {php_str(f'{self.host}:{self.port}')};\n"
            f"$_SERVER['SERVER_NAME'] = {php_str(self.host)};\n"
            f"$_SERVER['SERVER_PORT'] = '{self.port}';\n"
            "$_SERVER['REQUEST_URI'] = '/'; $_SERVER['REQUEST_METHOD'] = 'GET';\n"
            + ("define('WP_INSTALLING', true);\n" if installing else "")
            + f"require {php_str(str(WP_ROOT / 'wp-load.php'))};\n"
            "$__result = (function () {\n" + code + "\n})();\n"
            f"echo \"\\n{MARK}\" . json_encode($__result);\n"
        )

    def php(self, code: str, *, installing: bool = False) -> Any:
        """Runs PHP inside this site (WordPress loaded) and returns what ``code`` returns."""
        script = self.php_script(code, installing=installing)
        with tempfile.NamedTemporaryFile("w", suffix=".php", delete=False) as handle:
            handle.write(script)
        try:
            proc = subprocess.run(["php", handle.name], capture_output=True, text=True,
                                  check=False, timeout=300)
        finally:
            os.unlink(handle.name)
        if MARK not in proc.stdout:
            raise DevsiteError(
                f"PHP on {self.host} failed ({proc.returncode}): "
                f"{(proc.stdout + proc.stderr).strip()[-2000:]}"
            )
        return json.loads(proc.stdout.rsplit(MARK, 1)[1])

    # --- helpers for tests and the demo -------------------------------------------------

    def create_post(self, **fields: Any) -> int:
        """wp_insert_post() with sensible defaults; returns the new post's ID."""
        post = {"post_status": "publish", "post_type": "post", "post_title": "A post",
                "post_content": "", "post_author": 1, **fields}
        return int(self.php(
            f"$id = wp_insert_post(json_decode({php_str(json.dumps(post))}, true), true);\n"
            "if (is_wp_error($id)) { return $id->get_error_message(); }\nreturn $id;"
        ))

    def update_post(self, post_id: int, **fields: Any) -> None:
        post = {"ID": post_id, **fields}
        result = self.php(
            f"$r = wp_update_post(json_decode({php_str(json.dumps(post))}, true), true);\n"
            "return is_wp_error($r) ? $r->get_error_message() : $r;"
        )
        if result != post_id:
            raise DevsiteError(f"wp_update_post({post_id}) failed: {result}")

    def permalink(self, post_id: int) -> str:
        return str(self.php(f"return get_permalink({int(post_id)});"))

    def trackback_url(self, post_id: int) -> str:
        return str(self.php(
            f"$GLOBALS['post'] = get_post({int(post_id)}); return get_trackback_url();"))

    def comments(self, post_id: int, spam: bool = False) -> list[dict[str, Any]]:
        """Every comment on a post, held or approved (trackbacks wait in moderation); and
        those marked spam too when ``spam``."""
        return list(self.php(
            f"""
            return array_map(fn($c) => [
                'type' => $c->comment_type, 'author' => $c->comment_author,
                'author_url' => $c->comment_author_url, 'content' => $c->comment_content,
                'approved' => $c->comment_approved,
            ], get_comments(['post_id' => {int(post_id)}, 'type' => 'all', 'order' => 'ASC',
                             'status' => {"['hold', 'approve', 'spam']" if spam else "'all'"}]));
            """
        ))

    def pings(self, post_id: int) -> dict[str, list[str]]:
        return dict(self.php(
            f"$p = get_post({int(post_id)});\n"
            "return ['to_ping' => array_values(get_to_ping($p) ?: []),"
            " 'pinged' => array_values(array_filter(get_pung($p) ?: [], 'strlen'))];"
        ))

    def editor_rows(self, post_id: int) -> list[dict[str, Any]]:
        """The post's status rows as its editor shows them (the bridge's status route, read
        as the admin)."""
        return list(self.php(
            "wp_set_current_user(1);\n"
            "$r = rest_do_request(new WP_REST_Request('GET', "
            f"'/wpnotify/v1/posts/{int(post_id)}/status'));\n"
            "return $r->is_error() ? [] : $r->get_data()['rows'];"
        ))

    def set_admin_password(self) -> str:
        """A new random password for the admin, for a person to log in to a demo blog."""
        password = secrets.token_urlsafe(12)
        self.php(f"wp_set_password({php_str(password)}, 1); return true;")
        return password

    # --- the REST API as the admin, and pings sent to this site ---------------------------

    def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One REST request as the admin (its Application Password); the decoded JSON reply.
        ``path`` starts at the namespace: ``/wp/v2/comments?status=spam``."""
        import base64
        import urllib.request

        token = base64.b64encode(f"admin:{self.app_password}".encode()).decode()
        route, _, query = path.partition("?")  # the ?rest_route= form: any permalinks
        request = urllib.request.Request(
            f"{self.url}/?rest_route={route}" + (f"&{query}" if query else ""), method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def received_pings(self) -> dict[int, dict[str, Any]]:
        """Every trackback and pingback on the site as the admin sees them, by comment ID:
        held and approved (status=all), spam and trash; a comment deleted for good is in none
        of these. Each: status (REST: hold, approved, spam, trash), kind, post, source."""
        found: dict[int, dict[str, Any]] = {}
        for status in ("all", "spam", "trash"):
            page = 1
            while True:
                batch = self.rest("GET", f"/wp/v2/comments?type=pings&status={status}"
                                         f"&context=edit&per_page=100&page={page}")
                found.update({int(c["id"]): {"status": c["status"], "kind": c["type"],
                                             "post": int(c["post"]), "source": c["author_url"]}
                              for c in batch})
                if len(batch) < 100:
                    break
                page += 1
        return found

    def set_comment_status(self, comment_id: int, status: str) -> str:
        """What a person does in the moderation queue (approve, spam, hold), through REST;
        returns the status WordPress reports after it."""
        return str(self.rest("POST", f"/wp/v2/comments/{int(comment_id)}",
                             {"status": status})["status"])

    def send_trackback(self, ping_url: str, *, url: str, title: str, excerpt: str,
                       blog_name: str = "A source blog") -> None:
        """A real trackback to one of this site's posts (``ping_url``: ``trackback_url()``,
        the post's permalink + "trackback/"), spaced and repeated past the flood rule; raises
        DevsiteError unless WordPress answers <error>0."""
        import urllib.parse

        form = urllib.parse.urlencode({"url": url, "title": title, "excerpt": excerpt,
                                       "blog_name": blog_name, "charset": "UTF-8"}).encode()

        def send() -> str:
            return _post(ping_url, form, "application/x-www-form-urlencoded; charset=utf-8")

        answer = self._unflooded(send)
        if "<error>0</error>" not in answer:
            raise DevsiteError(f"trackback from {url} to {ping_url} refused: {answer!r}")

    def send_pingback(self, source: str, target: str) -> None:
        """A real pingback.ping(source, target) to this site's xmlrpc.php, spaced and repeated
        past the flood rule. WordPress fetches ``source`` meanwhile, and accepts only when it
        links to ``target``; anything else raises DevsiteError."""
        import xmlrpc.client

        def send() -> str:
            proxy = xmlrpc.client.ServerProxy(f"{self.url}/xmlrpc.php")
            try:
                return str(proxy.pingback.ping(source, target))
            except xmlrpc.client.Fault as fault:
                if fault.faultCode == 429:
                    return "429"
                raise DevsiteError(f"pingback from {source} to {target} refused: fault "
                                   f"{fault.faultCode} {fault.faultString!r}") from None

        self._unflooded(send)

    def _unflooded(self, send: Callable[[], str], tries: int = 4) -> str:
        """Runs ``send`` (a ping) no sooner than FLOOD_SECONDS after this site's last one, and
        again after that long while WordPress answers 429 (another sender pinged it)."""
        for _ in range(tries):
            time.sleep(max(0.0, self.pinged_at + FLOOD_SECONDS - time.monotonic()))
            answer = send()
            self.pinged_at = time.monotonic()
            if answer != "429":
                return answer
        raise DevsiteError(f"{self.url} still answers 429 (comment flood) after {tries} tries")

    def run_cron(self) -> None:
        """One real wp-cron.php request, as a visitor's page load would trigger."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/wp-cron.php?doing_wp_cron", timeout=30) as r:
            r.read()


@contextmanager
def running(sites: dict[str, Site]) -> Iterator[dict[str, Site]]:
    """Each site installed (or brought up to date) and served; all stopped on leaving, also
    when one fails to start."""
    try:
        for site in sites.values():
            site.install()
            site.start()
        yield sites
    finally:
        for site in sites.values():
            site.stop()


def _post(url: str, body: bytes, content_type: str) -> str:
    """A POST's answer as text; "429" for WordPress's flood refusal (HTTP 429)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return str(answer.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as error:
        if error.code == 429:
            return "429"
        raise DevsiteError(f"POST {url}: HTTP {error.code} "
                           f"{error.read(500).decode('utf-8', 'replace')!r}") from None


STATUS_SHOWN = {"0": "held for moderation", "1": "approved", "spam": "marked spam"}


def php_str(value: str) -> str:
    """A PHP single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --- the demo ---------------------------------------------------------------------------

def demo(workdir: Path, keep: bool) -> int:
    """A source blog with the bridge, a target blog, and wpnotify sending between them."""
    source = Site("127.0.0.2", title="Demo source blog", bridge=True)
    target = Site("127.0.0.3", title="Demo target blog")
    wpnotify = [sys.executable, "-m", "wpnotify"]
    try:
        for site in (source, target):
            print(f"==> installing WordPress at {site.url}", flush=True)
            site.install()
            site.start()
        linked = target.create_post(post_title="A post worth linking to",
                                    post_content="<p>Hello from the target blog.</p>")
        tracked = target.create_post(post_title="A post worth a trackback",
                                     post_content="<p>Send me a trackback.</p>")
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "config.toml"
        for name, site in (("source", source), ("target", target)):
            (workdir / f"{name}.password").write_text(site.app_password + "\n")
            (workdir / f"{name}.password").chmod(0o600)
        (workdir / "wpnotify.sqlite3").unlink(missing_ok=True)
        config.write_text(
            '# Written by wordpress/devsite.py demo.\nstate_file = "wpnotify.sqlite3"\n\n'
            "[http]\nallow_private_addresses = true  # the demo blogs live on 127.0.0.x\n\n"
            f'[[sites]]\nname = "demo"\nurl = "{source.url}"\nusername = "admin"\n'
            'password_file = "source.password"\n\n'
            "# The target blog: wpnotify judges the pings it receives (Received pings).\n"
            f'[[sites]]\nname = "target"\nurl = "{target.url}"\nusername = "admin"\n'
            'password_file = "target.password"\ninbound = "moderate"\n'
            "approve_verified = true\n"
        )
        env = dict(os.environ, WPNOTIFY_CONFIG=str(config))
        print("==> first poll: wpnotify starts watching from now, nothing old is sent", flush=True)
        subprocess.run(wpnotify + ["poll"], env=env, check=True)
        link = target.permalink(linked)
        ping_url = target.trackback_url(tracked)
        post_id = source.create_post(
            post_title="Linking to the target",
            post_content=f'<p>I read <a href="{link}">this post</a> and liked it.</p>',
            to_ping=ping_url,
        )
        print(f"==> published post {post_id} on the source: it links to {link}\n"
              f"    (a pingback) and queues a trackback to {ping_url}.\n"
              "    Polling; WordPress accepts one ping per 15 s per site, so wpnotify spaces "
              "them.\n    Then the target blog (inbound = \"moderate\") reads the two pings "
              "it received and\n    fetches each one's source page. The pingback's page links "
              "to its post: verified,\n    approved (approve_verified). The trackback's page "
              "does not link to the post it\n    pinged (it only queued a trackback): "
              "unverified, marked spam, reversibly:", flush=True)
        subprocess.run(wpnotify + ["poll"], env=env, check=True)
        for target_post in (linked, tracked):
            print(f"==> comments on {target.permalink(target_post)}:")
            for comment in target.comments(target_post, spam=True):
                print(f"    {comment['type']:<9} from {comment['author']!r} "
                      f"<{comment['author_url']}>, now "
                      f"{STATUS_SHOWN.get(comment['approved'], comment['approved'])}")
        print("==> wpnotify history (what was sent):", flush=True)
        subprocess.run(wpnotify + ["history"], env=env, check=True)
        print("==> wpnotify inbound (what the target blog received, and why each verdict):",
              flush=True)
        subprocess.run(wpnotify + ["inbound"], env=env, check=True)
        print("==> what the post's editor shows (Links and trackbacks), from the bridge:")
        for row in source.editor_rows(post_id):
            print(f"    {row['kind']:<9} {row['status']:<7} {row['target']}: {row['answer']}")
        if keep:
            print(f"==> the blogs stay up at {source.url} and {target.url}; Ctrl-C stops them.\n"
                  f"    See the panel: {source.url}/wp-admin/post.php?post={post_id}&action=edit"
                  f"\n    (user admin, password {source.set_admin_password()}, this demo's "
                  "only)", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        for site in (source, target):
            site.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("demo", help="install two blogs and send a trackback and a pingback")
    run.add_argument("--workdir", type=Path, default=Path("demo"), help="default: ./demo")
    run.add_argument("--keep", action="store_true", help="keep the blogs running afterwards")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop the PHP servers on kill, too
    if os.geteuid() != 0:
        print("devsite: run as root (it writes /etc/wordpress and /var/lib)", file=sys.stderr)
        return 2
    try:
        return demo(args.workdir.resolve(), args.keep)
    except (DevsiteError, subprocess.CalledProcessError) as exc:
        print(f"devsite: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
