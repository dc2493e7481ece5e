"""Settings: one TOML file, overridable by WPNOTIFY_* environment variables, loaded once into a
frozen object that is passed down explicitly.

Precedence, highest first: environment (``WPNOTIFY_POLL_INTERVAL``, ``WPNOTIFY_HTTP__TIMEOUT``,
``WPNOTIFY_SITES`` as JSON), then the file. Relative paths in the file are taken relative to the
file's folder, so a config works wherever it is started from.

Validation is written out here on frozen dataclasses rather than left to a library: every
command loads the settings, and importing a validation library and building its schemas cost
more start-up time than the rest of ``wpnotify history`` (issue 13). Each field's check sits in
its ``metadata``; the dataclasses check themselves in ``__post_init__``, so a ``SiteSettings``
built in code is checked like one read from a file. Scalars given as text (the environment has
nothing else) are converted as the old pydantic models did: ``"60"``, ``"7.5"``, ``"true"``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from wpnotify import __version__
from wpnotify.errors import ConfigError
from wpnotify.urls import redact, shown_dsn

DEFAULT_CONFIG = Path("/etc/wpnotify/config.toml")
DEFAULT_USER_AGENT = f"wpnotify/{__version__} (Pingback/TrackBack sender)"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SITE_URL = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")
_SERVICE_URL = re.compile(r"^https?://[^/\s?#]+(/\S*)?$")
NO_SITES = ("no sites to watch: add a [[sites]] table to the configuration file, or add one "
            "with: wpnotify sites add NAME --url URL --username USER --password-file PATH")
_LIST_HINT = '; write a list, e.g. ["a", "b"]'
_TABLE_HINT = "; write a table of keys, as in config.example.toml"


# --- Problems: where a value is wrong and why, gathered into one line ----------------------

@dataclass(frozen=True)
class Problem:
    """One bad key: ``loc`` is its path (``("sites", 0, "url")``); ``kind`` is "value",
    "missing" or "unknown". ``message`` never holds the value itself (it may be secret)."""

    loc: tuple[str | int, ...]
    message: str = ""
    kind: str = "value"


class InvalidSettings(ConfigError):
    """Settings that do not validate, every problem named on one line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(describe(self.problems))

    def within(self, *outer: str | int) -> list[Problem]:
        """The problems as seen from the table that holds this value."""
        return [dataclasses.replace(p, loc=(*outer, *p.loc)) for p in self.problems]


def _bad(message: str) -> InvalidSettings:
    return InvalidSettings([Problem((), message)])


def describe(problems: Sequence[Problem]) -> str:
    """One line naming each bad key and what it needs; never echoes a value (it may be secret),
    and should a message quote a URL, its user name and password are cut out."""
    parts = []
    for problem in problems:
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in problem.loc)
        key = key.removeprefix(".") or "(top level)"
        if problem.kind == "unknown":
            parts.append(f"unknown key {key} (a typo? every key is in config.example.toml)")
        elif problem.kind == "missing":
            parts.append(f"{key} is required")
        else:
            parts.append(f"{key}: {redact(problem.message)}")
    return "; ".join(parts)


# --- Checks of one value: each returns the value converted, or raises InvalidSettings --------

Check = Callable[[Any], Any]


def _spec(check: Check, *, table: type | None = None, listed: bool = False) -> dict[str, Any]:
    """A field's metadata: its check; ``table`` (a nested settings class) and ``listed`` tell
    the environment layer which values arrive as JSON."""
    return {"check": check, "table": table, "json": listed or table is not None}


def _within(value: float, gt: float | None, ge: float | None, le: float | None) -> None:
    # Upper bound first, and written as `not <=` so that NaN fails it, as pydantic reported.
    if le is not None and not value <= le:
        raise _bad(f"Input should be less than or equal to {le}")
    if ge is not None and not value >= ge:
        raise _bad(f"Input should be greater than or equal to {ge}")
    if gt is not None and not value > gt:
        raise _bad(f"Input should be greater than {gt}")


def _real(*, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, str):
            value = _real_from_text(value)
        # A boolean is no number here (Python counts True as 1: `timeout = true` is a typo).
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad("Input should be a valid number")
        _within(float(value), gt, ge, le)
        return float(value)
    return check


def _real_from_text(text: str) -> float:
    try:
        if text.isascii():  # float() would also read other scripts' digits
            return float(text)
    except ValueError:
        pass
    raise _bad("Input should be a valid number, unable to parse string as a number")


def _whole_from_text(text: str) -> int:
    """An integer from text: "3", " +3 ", "1_000", and "3.0" too (but not "3.5")."""
    if text.isascii():  # int() and float() would also read other scripts' digits
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            number = 0.5
        if number.is_integer():
            return int(number)
    raise _bad("Input should be a valid integer, unable to parse string as an integer")


def _whole(value: Any) -> int:
    if isinstance(value, str):
        return _whole_from_text(value)
    if isinstance(value, float) and not value.is_integer():
        raise _bad("Input should be a valid integer, got a number with a fractional part")
    if isinstance(value, float) and abs(value) >= 2**63:  # as pydantic, which reads an i64
        raise _bad("Unable to parse input string as an integer, exceeded maximum size")
    if isinstance(value, float):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):  # True is no count of anything
        raise _bad("Input should be a valid integer")
    return value


def _integer(*, ge: int | None = None, le: int | None = None) -> Check:
    def check(value: Any) -> int:
        number = _whole(value)
        _within(number, None, ge, le)
        return number
    return check


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _flag(value: Any) -> bool:
    """A real boolean; from text (the environment) the words pydantic took, in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str | int | float):
        raise _bad("Input should be a valid boolean, unable to interpret input")
    raise _bad("Input should be a valid boolean")


def _text(*then: Callable[[str], str], min_length: int = 0, max_length: int | None = None
          ) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _bad("Input should be a valid string")
        if len(value) < min_length:
            raise _bad(f"String should have at least {min_length} character")
        if max_length is not None and len(value) > max_length:
            raise _bad(f"String should have at most {max_length} characters")
        text: str = value
        for step in then:
            text = step(text)
        return text
    return check


def _choice(*options: str) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            quoted = [repr(option) for option in options]
            raise _bad(f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}")
        return str(value)
    return check


def _optional(inner: Check) -> Check:
    return lambda value: None if value is None else inner(value)


def _path(value: Any) -> Path:
    if not isinstance(value, str | os.PathLike):
        raise _bad("Input is not a valid path for <class 'pathlib.Path'>")
    path = Path(value)
    if "\x00" in str(path):  # open() would fail later with a bare ValueError
        raise _bad("a file name cannot contain a NUL character (\\u0000)")
    return path


def _secret(value: Any) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise _bad("Input should be a valid string")
    return Secret(value)


def _listed(item: Check, *then: Callable[[tuple[Any, ...]], tuple[Any, ...]],
            min_items: int = 0, max_items: int | None = None, hint: str = _LIST_HINT) -> Check:
    """A list: each item checked (its problems named by position), then its length, then
    ``then`` on the whole; tuples stay tuples."""
    def check(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise _bad("Input should be a valid tuple" + hint)
        items, problems = [], []
        for index, one in enumerate(value):
            try:
                items.append(item(one))
            except InvalidSettings as exc:
                problems.extend(exc.within(index))
        if problems:
            raise InvalidSettings(problems)
        if len(items) < min_items:
            raise _bad(f"Tuple should have at least {min_items} item after validation, not "
                       f"{len(items)}")
        if max_items is not None and len(items) > max_items:
            raise _bad(f"Tuple should have at most {max_items} items after validation, not "
                       f"{len(items)}")
        result = tuple(items)
        for step in then:
            result = step(result)
        return result
    return check


def _table(cls: type[Any]) -> Check:
    def check(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise _bad(f"Input should be a valid dictionary or instance of {cls.__name__}"
                       + _TABLE_HINT)
        return _build(cls, value)
    return check


# --- Whole tables -------------------------------------------------------------------------

def _fields_of(cls: type[Any] | None) -> dict[str, dataclasses.Field[Any]]:
    """The keys of a table setting (none for a plain value)."""
    if cls is None:
        return {}
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _required(spec: dataclasses.Field[Any]) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def _checked(cls: type[Any], given: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Each of ``cls``'s fields checked, in the order declared (the order of the message)."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for name, spec in _fields_of(cls).items():
        if name not in given:
            if _required(spec):
                problems.append(Problem((name,), kind="missing"))
            continue
        try:
            values[name] = spec.metadata["check"](given[name])
        except InvalidSettings as exc:
            problems.extend(exc.within(name))
    return values, problems


def _build(cls: type[Any], raw: Mapping[str, Any]) -> Any:
    """A settings object from a table of the file. Keys missing or unknown are reported with
    the other fields' problems; the checks of the whole table (one password, unique names)
    run only once every key is good, as before."""
    fields = _fields_of(cls)
    unknown = [Problem((key,), kind="unknown") for key in raw if key not in fields]
    if unknown or any(_required(f) and name not in raw for name, f in fields.items()):
        raise InvalidSettings(_checked(cls, raw)[1] + unknown)
    return cls(**raw)


def _validate(obj: Any) -> None:
    """Checks and converts ``obj``'s fields in place (from ``__post_init__``)."""
    values, problems = _checked(type(obj), vars(obj))
    if problems:
        raise InvalidSettings(problems)
    for name, value in values.items():
        object.__setattr__(obj, name, value)  # frozen: this is its construction


# --- Checks of particular settings -----------------------------------------------------------

def _http_url(value: str, shape: re.Pattern[str], example: str, userinfo_fix: str) -> str:
    """Checks an http(s) URL from the config. A user name and password in it are refused
    before anything else, and no message repeats the value: it would print the password."""
    authority = re.split(r"[/?#]", value.partition("//")[2] or value, maxsplit=1)[0]
    if "@" in authority:
        raise _bad(f"remove the user name and password from the URL; {userinfo_fix}")
    if _CONTROLS.search(value):
        raise _bad("must not contain control characters (CR, LF, NUL, ESC ...)")
    if not shape.match(value):
        raise _bad(example)
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port out of range
    except ValueError:
        port = 0
    if port == 0 or not parts.hostname:
        raise _bad("has no valid host, or a bad port (a number from 1 to 65535)")
    return value


def _site_url(value: str) -> str:
    _http_url(value, _SITE_URL, "must be the site's address, http(s)://host[/path], without "
              "query or fragment, e.g. \"https://blog.example.org\"",
              "use username and password_file")
    return value.rstrip("/")


def _service_url(value: str) -> str:
    return _http_url(value, _SERVICE_URL,
                     "must be an http(s) URL, e.g. \"http://rpc.pingomatic.com/\"",
                     "update services take none")


_PROXY = re.compile(r"^http://[^/\s?#]+/?$")


def _proxy_url(value: str) -> str:
    """``[http] proxy``: "" (none) or ``http://host:port``. Only plain-HTTP proxies: wpnotify
    speaks CONNECT to them and TLS to the target inside the tunnel; a user name and password
    in the URL are refused (they would be printed wherever the URL is), as are a path or query,
    which a CONNECT proxy has no use for."""
    if value == "":
        return value
    scheme = value.partition("://")[0].lower() if "://" in value else ""
    if scheme and scheme != "http":
        raise _bad("only http:// proxies are supported (https targets are tunnelled through "
                   "them with CONNECT); https:// and socks proxies are not, e.g. "
                   "\"http://proxy.internal:3128\"")
    _http_url(value, _PROXY, "must be http://host:port, without path, query or fragment, e.g. "
              "\"http://proxy.internal:3128\"",
              "use [http] proxy_username and proxy_password_file")
    if urlsplit(value).port is None:
        raise _bad("give the proxy's port, e.g. \"http://proxy.internal:3128\"")
    return value.rstrip("/")


def _shown(value: str) -> str:
    """A config value quoted in a message, less anything before an '@' (a pasted URL's user
    name and password)."""
    return repr(value if "@" not in value else "…@" + value.rpartition("@")[2])


def _state_url(value: str) -> str:
    """A PostgreSQL URL; no message repeats it (it may hold a password)."""
    if _CONTROLS.search(value):
        raise _bad("must not contain control characters (CR, LF, NUL, ESC ...)")
    if not re.match(r"^postgres(ql)?://", value):
        raise _bad("must be a PostgreSQL URL, e.g. \"postgresql://wpnotify@127.0.0.1:5432/"
                   "wpnotify\" (for the SQLite file, set state_file instead)")
    return value


_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.%a-zA-Z0-9]+)\]|(?P<host>[A-Za-z0-9.-]+)):"
                     r"(?P<port>[0-9]{1,5})$")


def listen_address(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host, port): for ``metrics_listen``. The host is an
    IPv4 or IPv6 address or a host name; port 0 takes any free port (tests)."""
    found = _LISTEN.match(value)
    port = int(found["port"]) if found else -1
    if not found or port > 65535:
        raise _bad('use "host:port" or "[ipv6]:port", e.g. "127.0.0.1:9464" or "[::1]:9464"')
    host = found["v6"] or found["host"]
    if found["v6"]:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad('the address in [...] is no IPv6 address; e.g. "[::1]:9464"') from None
    return host, port


def _listen(value: str) -> str:
    listen_address(value)
    return value


def _proxy_user(value: str) -> str:
    # Sent as user:password in Basic credentials: a colon would move the split.
    if ":" in value or _CONTROLS.search(value):
        raise _bad("must not contain ':' or control characters")
    return value


def _site_name(value: str) -> str:
    if not _NAME.match(value):
        raise _bad("use letters, digits, '.', '_' or '-' (at most 64), e.g. \"blog\"")
    return value


def _printable(value: str) -> str:
    if _CONTROLS.search(value):
        raise _bad("must not contain control characters (CR, LF, NUL, ESC ...)")
    return value


def _user_agent(value: str) -> str:
    # It goes into every request's headers: a CR or LF would let the config add headers
    # (or a body), and http.client sends only Latin-1.
    if not re.fullmatch(r"[\x20-\x7e]+", value):
        raise _bad("use printable ASCII only: no CR, LF, NUL, tab or other control "
                   "characters, no accented letters, e.g. \"wpnotify (+https://"
                   "blog.example.org)\"")
    return value


def _networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise _bad(f"{_shown(network)} is not a network; write e.g. \"10.1.2.0/24\" "
                       "or \"fd00::/8\"") from None
    return value


def _delays(value: tuple[float, ...]) -> tuple[float, ...]:
    if any(not 1 <= d <= 7 * 86400 for d in value):
        raise _bad("each delay is a number of seconds from 1 to 604800 (7 days)")
    return value


def _hosts(value: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in value:
        if not re.match(r"^[A-Za-z0-9*?.\-\[\]:]+$", pattern) or "/" in pattern:
            raise _bad(f"{_shown(pattern)} is not a host pattern; write e.g. "
                       "\"*.example.org\" or \"blog.example.com\"")
    return value


def _post_types(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value or any(not re.match(r"^[a-z0-9_-]{1,20}$", t) for t in value):
        raise _bad('must list post type names such as ["post", "page"]')
    return _unique(value)


def _unique(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value))


# --- The settings --------------------------------------------------------------------------

class Secret:
    """A password: kept out of repr() and str(), so out of logs and tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    """How wpnotify talks to the network."""

    timeout: float = field(default=20.0, metadata=_spec(_real(gt=0, le=600)))
    connect_timeout: float = field(default=5.0, metadata=_spec(_real(gt=0, le=120)))
    user_agent: str = field(default=DEFAULT_USER_AGENT, metadata=_spec(
        _text(_user_agent, min_length=1, max_length=1000)))
    allow_private_addresses: bool = field(default=False, metadata=_spec(_flag))
    allowed_networks: tuple[str, ...] = field(default=(), metadata=_spec(
        _listed(_text(), _networks), listed=True))
    max_redirects: int = field(default=5, metadata=_spec(_integer(ge=0, le=20)))
    max_body_bytes: int = field(default=1024 * 1024, metadata=_spec(_integer(ge=4096)))
    wordpress_ping_interval: float = field(default=15.0, metadata=_spec(_real(ge=0, le=3600)))
    concurrency: int = field(default=16, metadata=_spec(_integer(ge=1, le=256)))
    per_host_concurrency: int = field(default=2, metadata=_spec(_integer(ge=1, le=16)))
    proxy: str = field(default="", metadata=_spec(_text(_proxy_url)))
    proxy_username: str = field(default="", metadata=_spec(_text(_proxy_user)))
    proxy_password_file: Path | None = field(default=None, metadata=_spec(_optional(_path)))
    _proxy_secret: Secret = field(init=False, repr=False, default=Secret(""))

    def __post_init__(self) -> None:
        _validate(self)
        if bool(self.proxy_username) != (self.proxy_password_file is not None):
            raise _bad("set both proxy_username and proxy_password_file (the proxy's "
                       "credentials), or neither")
        if self.proxy_username and not self.proxy:
            raise _bad("proxy_username and proxy_password_file need [http] proxy")
        if self.proxy_password_file is not None:
            object.__setattr__(self, "_proxy_secret",
                               _read_secret(self.proxy_password_file, "proxy_password_file"))

    def proxy_password(self) -> str:
        """The proxy's password, for the one place that sends it ("" when there is none)."""
        return self._proxy_secret.reveal()


@dataclass(frozen=True, kw_only=True)
class RetrySettings:
    """When failed-for-now notifications are tried again."""

    delays: tuple[float, ...] = field(default=(60, 300, 1800, 7200, 43200), metadata=_spec(
        _listed(_real(), _delays, min_items=1, max_items=20), listed=True))

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True, kw_only=True)
class SiteSettings:
    """One watched WordPress site. The password is read (from the file or the systemd
    credential) when the settings are built, so that a missing file is a config error now."""

    name: str = field(metadata=_spec(_text(_site_name)))
    url: str = field(metadata=_spec(_text(_site_url, max_length=2000)))
    api: Literal["rest", "xmlrpc"] = field(default="rest", metadata=_spec(
        _choice("rest", "xmlrpc")))
    username: str = field(metadata=_spec(_text(_printable, min_length=1, max_length=200)))
    password: Secret | None = field(default=None, metadata=_spec(_optional(_secret)))
    password_file: Path | None = field(default=None, metadata=_spec(_optional(_path)))
    password_credential: str | None = field(default=None, metadata=_spec(
        _optional(_text(_printable, max_length=255))))
    post_types: tuple[str, ...] = field(default=("post",), metadata=_spec(
        _listed(_text(max_length=100), _post_types, max_items=100), listed=True))
    self_pings: bool = field(default=False, metadata=_spec(_flag))
    prefer: Literal["webmention", "pingback", "both"] = field(default="webmention", metadata=(
        _spec(_choice("webmention", "pingback", "both"))))
    trackback_discovery: bool = field(default=False, metadata=_spec(_flag))
    max_trackbacks_per_post: int = field(default=10, metadata=_spec(_integer(ge=0, le=1000)))
    allow_hosts: tuple[str, ...] = field(default=(), metadata=_spec(
        _listed(_text(max_length=255), _hosts, max_items=1000), listed=True))
    deny_hosts: tuple[str, ...] = field(default=(), metadata=_spec(
        _listed(_text(max_length=255), _hosts, max_items=1000), listed=True))
    update_services: tuple[str, ...] = field(default=(), metadata=_spec(
        _listed(_text(_service_url, max_length=2000), _unique, max_items=100), listed=True))
    # The pings the site receives (issue 16): "off", "report" (verdicts recorded only) or
    # "moderate" (an unverified ping held for moderation is marked spam).
    inbound: Literal["off", "report", "moderate"] = field(default="off", metadata=_spec(
        _choice("off", "report", "moderate")))
    approve_verified: bool = field(default=False, metadata=_spec(_flag))
    verify_sender_ip: bool = field(default=False, metadata=_spec(_flag))
    inbound_allow_hosts: tuple[str, ...] = field(default=(), metadata=_spec(
        _listed(_text(max_length=255), _hosts, max_items=1000), listed=True))
    inbound_deny_hosts: tuple[str, ...] = field(default=(), metadata=_spec(
        _listed(_text(max_length=255), _hosts, max_items=1000), listed=True))
    _secret: Secret = field(init=False, repr=False, default=Secret(""))

    def __post_init__(self) -> None:
        _validate(self)
        _inbound_fits(vars(self))
        object.__setattr__(self, "_secret", self._read_password())

    def _read_password(self) -> Secret:
        _one_password(vars(self))
        if self.password is not None:
            return self.password
        if self.password_file is not None:
            return _read_secret(self.password_file, "password_file")
        folder = os.environ.get("CREDENTIALS_DIRECTORY")
        if not folder:
            raise _bad("password_credential needs systemd's LoadCredential= "
                       "(CREDENTIALS_DIRECTORY is not set); use password_file outside systemd")
        return _read_secret(Path(folder) / str(self.password_credential), "password_credential")

    def secret(self) -> str:
        """The Application Password, for the one place that sends it."""
        return self._secret.reveal()


def _one_password(values: Mapping[str, Any]) -> None:
    given = [values.get(key) for key in ("password", "password_file", "password_credential")]
    if sum(value is not None for value in given) != 1:
        raise _bad("set exactly one of password, password_file or password_credential (an "
                   "Application Password, Users > Profile > Application Passwords)")


def _inbound_fits(values: Mapping[str, Any]) -> None:
    """The inbound settings that only make sense together."""
    inbound = values.get("inbound", "off")
    if inbound != "off" and values.get("api", "rest") != "rest":
        raise _bad(f'inbound = "{inbound}" reads the site\'s comments over the REST API; set '
                   'api = "rest" (or inbound = "off" for a site whose REST API is off)')
    if values.get("approve_verified") and inbound != "moderate":
        raise _bad('approve_verified needs inbound = "moderate" (in "report" wpnotify '
                   "changes no comment)")


def site_settings(raw: Mapping[str, Any]) -> SiteSettings:
    """A site from plain values (a site stored by `wpnotify sites add`), checked exactly as
    a [[sites]] table of the file is, its password read; InvalidSettings when it does not
    validate."""
    site: SiteSettings = _build(SiteSettings, raw)
    return site


def checked_site(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw``'s values checked and converted as a [[sites]] table's are, without reading
    the password: `wpnotify sites add` stores a site that another machine's worker may be
    the one able to read the password of. InvalidSettings when it does not validate."""
    values, problems = _checked(SiteSettings, raw)
    fields = _fields_of(SiteSettings)
    problems += [Problem((key,), kind="unknown") for key in raw if key not in fields]
    if problems:
        raise InvalidSettings(problems)
    _one_password(values)
    _inbound_fits(values)
    return values


def _read_secret(path: Path, key: str) -> Secret:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise _bad(f"{key} {path}: cannot read it ({exc.strerror})") from None
    if not secret:
        raise _bad(f"{key} {path} is empty")
    return Secret(secret)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything wpnotify reads from its configuration."""

    state_file: Path = field(default=Path("wpnotify.sqlite3"), metadata=_spec(_path))
    # Left out of repr(): the URL may hold a password (``state_shown`` is without it).
    state_url: str | None = field(default=None, repr=False, metadata=_spec(
        _optional(_text(_state_url))))
    poll_interval: float = field(default=300.0, metadata=_spec(_real(ge=5, le=86400)))
    worker_lease: float = field(default=30.0, metadata=_spec(_real(ge=3, le=3600)))
    http: HttpSettings = field(default_factory=HttpSettings, metadata=_spec(
        _table(HttpSettings), table=HttpSettings))
    retry: RetrySettings = field(default_factory=RetrySettings, metadata=_spec(
        _table(RetrySettings), table=RetrySettings))
    sites_refresh: float = field(default=15.0, metadata=_spec(_real(ge=1, le=3600)))
    # None at all is valid: a fleet adds its sites with `wpnotify sites add`.
    sites: tuple[SiteSettings, ...] = field(default=(), metadata=_spec(_listed(
        _table(SiteSettings),
        hint="; write one [[sites]] table per site, as in config.example.toml"), listed=True))
    # The daemon's Prometheus /metrics and /healthz, e.g. "127.0.0.1:9464"; None: off.
    metrics_listen: str | None = field(default=None, metadata=_spec(_optional(_text(_listen))))

    def __post_init__(self) -> None:
        _validate(self)
        names = [site.name for site in self.sites]
        for name in names:
            if names.count(name) > 1:
                raise _bad(f"two [[sites]] are named {name!r}; names must be unique")

    @property
    def state_location(self) -> Path | str:
        """Where the state is, for ``open_state``: the PostgreSQL URL, or the SQLite file."""
        return self.state_url if self.state_url is not None else self.state_file

    @property
    def state_shown(self) -> str:
        """The state as messages name it, never with a password."""
        if self.state_url is not None:
            return f"state database {shown_dsn(self.state_url)}"
        return f"state file {self.state_file}"

    def site(self, name: str) -> SiteSettings:
        for site in self.sites:
            if site.name == name:
                return site
        if not self.sites:
            raise ConfigError(NO_SITES)
        known = ", ".join(s.name for s in self.sites)
        raise ConfigError(f"no site named {name!r} in the configuration (known: {known}); "
                          "see: wpnotify sites list")


# --- Reading the file and the environment ----------------------------------------------------

def config_path(option: Path | None, environ: Mapping[str, str]) -> Path:
    """Which file to read: --config, then $WPNOTIFY_CONFIG, then /etc/wpnotify/config.toml."""
    if option is not None:
        return option
    if environ.get("WPNOTIFY_CONFIG"):
        return Path(environ["WPNOTIFY_CONFIG"])
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    raise ConfigError(
        "no configuration: pass --config PATH or set WPNOTIFY_CONFIG "
        "(start from config.example.toml)"
    )


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Reads, validates and freezes the configuration, the environment's WPNOTIFY_*
    variables laid over the file; every problem becomes a ConfigError."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (copy config.example.toml)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    given = overrides(os.environ if environ is None else environ)
    if "state_file" in raw or "state_file" in given:
        both = {**raw, **given}
        if both.get("state_url") is not None:
            raise ConfigError(f"{path}: state_url and state_file are both set; keep one "
                              "(state_url: a PostgreSQL database, state_file: an SQLite file)")
    _resolve_paths(raw, path.resolve().parent)
    merged = _laid_over(raw, given)
    try:
        settings: Settings = _build(Settings, merged)
    except InvalidSettings as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return settings


ENV_PREFIX = "WPNOTIFY_"


def overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given by environment variables: ``WPNOTIFY_POLL_INTERVAL`` for a key,
    ``WPNOTIFY_HTTP__TIMEOUT`` for a key of a table; names in any case. A list or a table
    (``WPNOTIFY_SITES``, ``WPNOTIFY_RETRY__DELAYS``) is JSON; other values are text that
    validation converts. Variables naming no setting (``WPNOTIFY_CONFIG``) are not read."""
    found: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        fields = _fields_of(Settings)
        if path[0] not in fields:
            continue
        table = found
        for key in path[:-1]:
            fields = _fields_of(fields[key].metadata["table"]) if key in fields else {}
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                break  # WPNOTIFY_HTTP and WPNOTIFY_HTTP__X: the whole table wins
        else:
            key = path[-1]
            complex_value = key in fields and fields[key].metadata["json"]
            table[key] = _decoded(name, value) if complex_value else value
    return found


def _decoded(name: str, value: str) -> Any:
    """A list or table from the environment; never repeats the value (it may be secret)."""
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ConfigError(
            f"environment variable {name}: not valid JSON ({exc}); lists and tables from "
            "the environment are JSON, e.g. WPNOTIFY_SITES='[{\"name\": \"blog\", \"url\": "
            "\"https://blog.example.org\", ...}]'") from None


def _laid_over(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over``'s keys replace ``base``'s, tables merged key by key (lists replaced)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _laid_over(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Makes state_file (default: next to the file), password_file and proxy_password_file
    relative to the config file's folder."""
    raw.setdefault("state_file", "wpnotify.sqlite3")
    if isinstance(raw.get("state_file"), str):
        raw["state_file"] = str(base / os.path.expanduser(raw["state_file"]))
    http = raw.get("http")
    if isinstance(http, dict) and isinstance(http.get("proxy_password_file"), str):
        http["proxy_password_file"] = str(base / os.path.expanduser(http["proxy_password_file"]))
    sites = raw.get("sites")
    for site in sites if isinstance(sites, list) else []:  # else validation names the key
        if isinstance(site, dict) and isinstance(site.get("password_file"), str):
            site["password_file"] = str(base / os.path.expanduser(site["password_file"]))
