"""Keeping credentials out of reprs, logs, errors and CLI output."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["redact", "redact_url"]

_PASSWORD_PARAM = re.compile(r"(?i)(password=)([^&\s]+)")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}"
    query = _PASSWORD_PARAM.sub(r"\1***", parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url  # nothing secret; keep the URL exactly as given
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


#: The password of a URL's user info, wherever a URL appears in a text.
_URL_PASSWORD = re.compile(r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s/@]*(?=@)")
#: A ``password=...`` (or ``password: ...``) setting: a URL parameter or a DSN keyword.
_PASSWORD_SETTING = re.compile(
    r"(?i)(?P<pre>\bpassword\s*[=:]\s*)(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&;,]+)"
)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with the password components replaced by ``***``: the password of every
    URL in it (``scheme://user:PASSWORD@host``) and every ``password=...`` setting
    (URL parameter or DSN keyword, quoted or not); and each of ``secrets`` where it
    stands in such a place (raw or URL-encoded), never where it only occurs as a
    substring of other text (a password ``p`` leaves ``port`` alone)."""
    text = _URL_PASSWORD.sub(r"\g<pre>***", text)
    text = _PASSWORD_SETTING.sub(r"\g<pre>***", text)
    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe="")}:
                text = re.sub(rf"(?<=:){re.escape(form)}(?=@)", "***", text)
    return text
