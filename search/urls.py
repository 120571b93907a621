"""Storage and tracking URLs in anything a person or a file can see: passwords masked.

``mask_url`` is the one masking function: every place that prints, logs or records a
``--storage`` or ``--tracking-uri`` (stderr, the summary, MLflow tags and params, tables,
error messages) goes through it. It is built on SQLAlchemy's URL parser, which reads a
password holding ``/``, ``:``, spaces or unicode; a raw ``@`` inside a password is ambiguous
in any URL (SQLAlchemy takes the first ``@``), so we mask up to the last ``@`` instead, which
hides more, never less. ``scrub`` removes a URL's password, in every spelling a driver might
echo it (as typed, percent-decoded, percent-encoded), from a message we did not write.
"""

from __future__ import annotations

import urllib.parse

from sqlalchemy.engine import make_url

MASK = "***"


def _split(url: str) -> tuple[str, str, str] | None:
    """(scheme, userinfo, rest) when ``url`` carries ``user:password@``, else ``None``."""
    scheme, sep, remainder = url.partition("://")
    userinfo, at, rest = remainder.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return None
    return scheme, userinfo, rest


def mask_url(url: str) -> str:
    """``scheme://user:secret@host/db`` -> ``scheme://user:***@host/db``; anything without a
    password comes back unchanged."""
    parts = _split(url)
    if parts is None:
        return url
    scheme, userinfo, rest = parts
    user = userinfo.split(":", 1)[0]
    try:
        parsed = make_url(f"{scheme}://{user}:{MASK}@{rest}")
        return parsed.render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not an SQLAlchemy URL (an http tracking URI, say)
        return f"{scheme}://{user}:{MASK}@{rest}"


def secrets(url: str | None) -> list[str]:
    """The password of ``url`` in every spelling it may be echoed in (longest first)."""
    parts = _split(url or "")
    if parts is None:
        return []
    password = parts[1].split(":", 1)[1]
    spellings = {password, urllib.parse.unquote(password), urllib.parse.quote(password, safe="")}
    return sorted((s for s in spellings if s), key=len, reverse=True)


def scrub(text: str, *urls: str | None) -> str:
    """``text`` with every URL in ``urls`` masked and their passwords replaced by ``***``."""
    for url in urls:
        if url:
            text = text.replace(url, mask_url(url))
            for secret in secrets(url):
                text = text.replace(secret, MASK)
    return text
