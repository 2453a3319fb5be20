"""Server URLs of the HTTP backends: several per spec, credentials kept out of every file and message,
and API keys sent only where they belong.

A URL may carry credentials (`https://user:secret@host/v1`, `...?key=secret`): the request uses them,
but `redact` replaces them with `***` wherever a URL is shown or stored (config.yaml, results.json,
cards, logs, error messages). `OPENAI_API_KEY` goes only to OpenAI's own host; any other server gets a
key only through an explicit `api_key_env`, so a grid file that names a third-party URL never leaks it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fewforge.errors import BackendError, ConfigError

log = logging.getLogger("fewforge")

OPENAI_URL = "https://api.openai.com/v1"
OPENAI_HOSTS = ("api.openai.com",)
LOCAL_DUMMY_KEY = "sk-no-key-required"  # local servers accept any key; the client insists on one
_SECRET_PARAM = re.compile(r"key|token|secret|passw|sig|auth|credential", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s,'\"]+")


def split_urls(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """`URL1,URL2` (or a list) -> the URLs, each checked to be http(s)."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    urls = [u.strip() for u in items if u and u.strip()]
    for url in urls:
        if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
            raise ConfigError(f"invalid server URL {redact(url)!r}", hint="write it as http(s)://HOST[:PORT]/v1")
    return urls


def parse_model_at_urls(arg: str) -> tuple[str, list[str]]:
    """`MODEL@URL1,URL2` -> (MODEL, [URL1, URL2]); a bare `MODEL` -> (MODEL, []). The model ends at the
    first `@http`, so credentials inside a URL (`user:pw@host`) do not split it."""
    match = re.match(r"^(?P<model>.+?)@(?P<urls>https?://.*)$", arg)
    if not match:
        return arg, []
    return match["model"], split_urls(match["urls"])


def redact(url: str) -> str:
    """The URL with its user info and secret-looking query values replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL inside `text` (a generator spec, an error message) redacted."""
    return _URL.sub(lambda m: redact(m.group(0)), text)


def redact_value(value: Any) -> Any:
    """Strings, lists and dicts with every URL inside redacted (generator options as written to files)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


def client_url(url: str) -> tuple[str, dict[str, str]]:
    """(the base URL without its query, the query as the client's default query): the SDK drops a
    query written into base_url, and `?key=` must travel with every request."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), query


def is_openai(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in OPENAI_HOSTS


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key(urls: list[str], api_key_env: str | None) -> str:
    """The key to send to `urls`: `$api_key_env` when given (it must be set), `$OPENAI_API_KEY` for
    OpenAI's own host only, else a dummy key (local servers want none). Read at call time, never stored."""
    if api_key_env:
        value = os.environ.get(api_key_env)
        if not value:
            raise BackendError(
                f"the environment variable {api_key_env} (api_key_env) is not set",
                hint=f"export {api_key_env}=<your key>, or drop api_key_env for a server that needs no key",
            )
        for url in urls:
            if url.startswith("http://") and not is_loopback(url):
                log.warning("sending the key from %s in plain text to %s (use https)", api_key_env, redact(url))
        return value
    if urls and all(is_openai(u) for u in urls):
        value = os.environ.get("OPENAI_API_KEY")
        if not value:
            raise BackendError(
                "OpenAI's API needs a key and OPENAI_API_KEY is not set",
                hint="export OPENAI_API_KEY=<your key>",
            )
        return value
    return LOCAL_DUMMY_KEY
