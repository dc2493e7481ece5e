"""Settings: one TOML file, overridable by WPNOTIFY_* environment variables, loaded once into a
frozen object that is passed down explicitly.

Precedence, highest first: environment (``WPNOTIFY_POLL_INTERVAL``, ``WPNOTIFY_HTTP__TIMEOUT``,
``WPNOTIFY_SITES`` as JSON), then the file. Relative paths in the file are taken relative to the
file's folder, so a config works wherever it is started from.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from wpnotify import __version__
from wpnotify.errors import ConfigError
from wpnotify.urls import redact

DEFAULT_CONFIG = Path("/etc/wpnotify/config.toml")
DEFAULT_USER_AGENT = f"wpnotify/{__version__} (Pingback/TrackBack sender)"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SITE_URL = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")
_SERVICE_URL = re.compile(r"^https?://[^/\s?#]+(/\S*)?$")


def _http_url(value: str, shape: re.Pattern[str], example: str, userinfo_fix: str) -> str:
    """Checks an http(s) URL from the config. A user name and password in it are refused
    before anything else, and no message repeats the value: it would print the password."""
    authority = re.split(r"[/?#]", value.partition("//")[2] or value, maxsplit=1)[0]
    if "@" in authority:
        raise ValueError(f"remove the user name and password from the URL; {userinfo_fix}")
    if _CONTROLS.search(value):
        raise ValueError("must not contain control characters (CR, LF, NUL, ESC ...)")
    if not shape.match(value):
        raise ValueError(example)
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port out of range
    except ValueError:
        port = 0
    if port == 0 or not parts.hostname:
        raise ValueError("has no valid host, or a bad port (a number from 1 to 65535)")
    return value


def _service_url(value: str) -> str:
    return _http_url(value, _SERVICE_URL,
                     "must be an http(s) URL, e.g. \"http://rpc.pingomatic.com/\"",
                     "update services take none")


ServiceUrl = Annotated[str, AfterValidator(_service_url)]


def _shown(value: str) -> str:
    """A config value quoted in a message, less anything before an '@' (a pasted URL's user
    name and password)."""
    return repr(value if "@" not in value else "…@" + value.rpartition("@")[2])


def _no_nul(value: Path | None) -> None:
    """A NUL cannot be in a file name; open() would fail later with a bare ValueError."""
    if value is not None and "\x00" in str(value):
        raise ValueError("a file name cannot contain a NUL character (\\u0000)")


class HttpSettings(BaseModel):
    """How wpnotify talks to the network."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: float = Field(default=20.0, gt=0, le=600)
    connect_timeout: float = Field(default=5.0, gt=0, le=120)
    user_agent: str = Field(default=DEFAULT_USER_AGENT, min_length=1, max_length=1000)
    allow_private_addresses: bool = False
    allowed_networks: tuple[str, ...] = ()
    max_redirects: int = Field(default=5, ge=0, le=20)
    max_body_bytes: int = Field(default=1024 * 1024, ge=4096)
    wordpress_ping_interval: float = Field(default=15.0, ge=0, le=3600)
    concurrency: int = Field(default=16, ge=1, le=256)
    per_host_concurrency: int = Field(default=2, ge=1, le=16)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{_shown(network)} is not a network; write e.g. \"10.1.2.0/24\" "
                                 "or \"fd00::/8\"") from None
        return value

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str) -> str:
        # It goes into every request's headers: a CR or LF would let the config add headers
        # (or a body), and http.client sends only Latin-1.
        if not re.fullmatch(r"[\x20-\x7e]+", value):
            raise ValueError("use printable ASCII only: no CR, LF, NUL, tab or other control "
                             "characters, no accented letters, e.g. \"wpnotify (+https://"
                             "blog.example.org)\"")
        return value


class RetrySettings(BaseModel):
    """When failed-for-now notifications are tried again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    delays: tuple[float, ...] = Field(default=(60, 300, 1800, 7200, 43200), min_length=1,
                                      max_length=20)

    @field_validator("delays")
    @classmethod
    def _delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 1 <= d <= 7 * 86400 for d in value):
            raise ValueError("each delay is a number of seconds from 1 to 604800 (7 days)")
        return value


class SiteSettings(BaseModel):
    """One watched WordPress site."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    url: str
    api: Literal["rest", "xmlrpc"] = "rest"
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    password_file: Path | None = None
    password_credential: str | None = None
    post_types: tuple[str, ...] = ("post",)
    self_pings: bool = False
    prefer: Literal["webmention", "pingback", "both"] = "webmention"
    trackback_discovery: bool = False
    max_trackbacks_per_post: int = Field(default=10, ge=0, le=1000)
    allow_hosts: tuple[str, ...] = ()
    deny_hosts: tuple[str, ...] = ()
    update_services: tuple[ServiceUrl, ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' or '-' (at most 64), e.g. \"blog\"")
        return value

    @field_validator("username", "password_credential")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and _CONTROLS.search(value):
            raise ValueError("must not contain control characters (CR, LF, NUL, ESC ...)")
        return value

    @field_validator("password_file")
    @classmethod
    def _password_path(cls, value: Path | None) -> Path | None:
        _no_nul(value)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        _http_url(value, _SITE_URL, "must be the site's address, http(s)://host[/path], "
                  "without query or fragment, e.g. \"https://blog.example.org\"",
                  "use username and password_file")
        return value.rstrip("/")

    @field_validator("update_services")
    @classmethod
    def _services(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value))

    @field_validator("allow_hosts", "deny_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not re.match(r"^[A-Za-z0-9*?.\-\[\]:]+$", pattern) or "/" in pattern:
                raise ValueError(f"{_shown(pattern)} is not a host pattern; write e.g. "
                                 "\"*.example.org\" or \"blog.example.com\"")
        return value

    @field_validator("post_types")
    @classmethod
    def _post_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(not re.match(r"^[a-z0-9_-]{1,20}$", t) for t in value):
            raise ValueError('must list post type names such as ["post", "page"]')
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _one_password(self) -> SiteSettings:
        given = [self.password, self.password_file, self.password_credential]
        if sum(value is not None for value in given) != 1:
            raise ValueError(
                "set exactly one of password, password_file or password_credential (an "
                "Application Password, Users > Profile > Application Passwords)"
            )
        if self.password_credential is not None:
            folder = os.environ.get("CREDENTIALS_DIRECTORY")
            if not folder:
                raise ValueError("password_credential needs systemd's LoadCredential= "
                                 "(CREDENTIALS_DIRECTORY is not set); use password_file "
                                 "outside systemd")
            self._read_secret(Path(folder) / self.password_credential, "password_credential")
        elif self.password_file is not None:
            self._read_secret(self.password_file, "password_file")
        return self

    def _read_secret(self, path: Path, key: str) -> None:
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{key} {path}: cannot read it ({exc.strerror})") from None
        if not secret:
            raise ValueError(f"{key} {path} is empty")
        object.__setattr__(self, "password", SecretStr(secret))

    def secret(self) -> str:
        """The Application Password, for the one place that sends it."""
        if self.password is None:  # unreachable after validation; kept for the type checker
            raise ConfigError(f"site {self.name}: no password")
        return self.password.get_secret_value()


class Settings(BaseModel):
    """Everything wpnotify reads from its configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_file: Path = Path("wpnotify.sqlite3")
    poll_interval: float = Field(default=300.0, ge=5, le=86400)
    http: HttpSettings = HttpSettings()
    retry: RetrySettings = RetrySettings()
    sites: tuple[SiteSettings, ...]

    @field_validator("state_file")
    @classmethod
    def _state_path(cls, value: Path) -> Path:
        _no_nul(value)
        return value

    @field_validator("sites")
    @classmethod
    def _some_sites(cls, value: tuple[SiteSettings, ...]) -> tuple[SiteSettings, ...]:
        # Not Field(min_length=1): pydantic counts only the sites that validated, so one bad
        # site also reported "should have at least 1 item". This runs only when all are good.
        if not value:
            raise ValueError("add at least one [[sites]] table (see config.example.toml)")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        names = [site.name for site in self.sites]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two [[sites]] are named {name!r}; names must be unique")
        return self

    def site(self, name: str) -> SiteSettings:
        for site in self.sites:
            if site.name == name:
                return site
        known = ", ".join(s.name for s in self.sites)
        raise ConfigError(f"no site named {name!r} in the configuration (known: {known})")


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
    _resolve_paths(raw, path.resolve().parent)
    merged = _laid_over(raw, overrides(os.environ if environ is None else environ))
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc)}") from None


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
        fields: Mapping[str, Any] = Settings.model_fields
        if path[0] not in fields:
            continue
        table = found
        for key in path[:-1]:
            fields = _fields_of(fields[key].annotation) if key in fields else {}
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                break  # WPNOTIFY_HTTP and WPNOTIFY_HTTP__X: the whole table wins
        else:
            key = path[-1]
            complex_value = key in fields and _is_complex(fields[key].annotation)
            table[key] = _decoded(name, value) if complex_value else value
    return found


def _fields_of(annotation: Any) -> Mapping[str, Any]:
    """The keys of a table setting (none for a plain value)."""
    return annotation.model_fields if _is_model(annotation) else {}


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_complex(annotation: Any) -> bool:
    """A table or a list: given as JSON in the environment."""
    origin = typing.get_origin(annotation)
    return _is_model(annotation) or origin in (tuple, list, dict)


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
    """Makes state_file (default: next to the file) and password_file relative to the config
    file's folder."""
    raw.setdefault("state_file", "wpnotify.sqlite3")
    if isinstance(raw.get("state_file"), str):
        raw["state_file"] = str(base / os.path.expanduser(raw["state_file"]))
    sites = raw.get("sites")
    for site in sites if isinstance(sites, list) else []:  # else validation names the key
        if isinstance(site, dict) and isinstance(site.get("password_file"), str):
            site["password_file"] = str(base / os.path.expanduser(site["password_file"]))


def describe(exc: ValidationError) -> str:
    """One line naming each bad key and what it needs; never echoes a value (it may be secret),
    and should a message quote a URL, its user name and password are cut out."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in error["loc"])
        key = key.replace(".[", "[") or "(top level)"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown key {key} (a typo? every key is in config.example.toml)")
        elif error["type"] == "missing":
            parts.append(f"{key} is required")
        else:
            message = error["msg"].removeprefix("Value error, ") + _hint(key, error["type"])
            parts.append(f"{key}: {redact(message)}")
    return "; ".join(parts)


def _hint(key: str, kind: str) -> str:
    """The fix for pydantic's shape errors, which say only what the input should have been."""
    if key == "sites" and kind in ("tuple_type", "list_type"):
        return "; write one [[sites]] table per site, as in config.example.toml"
    if kind in ("tuple_type", "list_type"):
        return '; write a list, e.g. ["a", "b"]'
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "; write a table of keys, as in config.example.toml"
    return ""
