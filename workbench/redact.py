"""Keep credentials out of everything workbench records or prints.

Three tools, used wherever a value or a text leaves the process (the trace store, exports, the
journal, the terminal):

* :func:`redact` — a copy of a JSON-like value where everything under a secret-looking key name
  (``api_key``, ``user_token``, ``extra_headers``, ``X-Api-Key``, ``clientSecret``…, at any depth,
  in dicts inside lists too) is replaced by ``"[redacted]"`` (the key stays, so the record shows
  that a credential was passed), and credentials in URLs (``https://user:pass@host``,
  ``?api_key=…``) are stripped. It depends on the value only, so a request fingerprint computed
  over redacted parameters is stable and never depends on a secret.
* :func:`remember_secret` / :func:`remember_secrets_in` — a process-wide registry of secret
  values, filled by the LLM and tool layers from each call's arguments. The values of
  environment variables named like ``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``,
  ``*_JWT`` or ``*_KEY`` (and litellm's ``AWS_BEARER_TOKEN_BEDROCK``,
  ``GOOGLE_APPLICATION_CREDENTIALS_JSON``, ``WATSONX_ZENAPIKEY``) count as known too (read at
  each use, so they follow the environment).
* :func:`scrub` — a text with every known secret value and every URL credential replaced by
  ``"[redacted]"``. Meant for error messages and tracebacks, which may echo a key (a provider's
  "invalid API key sk-…", a URL with a password in it). A known value echoed URL-encoded or in
  base64 (``Authorization: Basic …``) is found too, and one holding an ``@`` or an ``&`` is
  taken whole.

Values shorter than :data:`MIN_SECRET_LEN` characters are never treated as known secrets: they
would match ordinary words.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
"""What a secret is replaced with."""

MIN_SECRET_LEN = 8
"""Shorter values are not remembered as secrets (they would match ordinary text)."""

_MAX_KNOWN = 1024  # remembered values kept (oldest forgotten first): a long-lived process stays bounded

# A key name that may carry a credential: one of these words, alone or as the last part of a
# name (``api_key``, ``extra_headers``, ``X-Api-Key``, ``aws_secret_access_key``, ``userToken``,
# ``snowflake_jwt``).
# Plural ``tokens`` is not a secret (``max_tokens``).
_SECRET_WORD = re.compile(
    r"(?:^|_)(?:api_?key|apikey|key|secrets?|password|passwd|passphrase|pwd|token|credentials?"
    r"|authorization|auth|headers?|cookies?|jwt)$"
)
# Names that end like a secret but are not one. A bare ``key`` is a lookup key far more often
# than a credential (``cache.get(key)``), a bare ``pwd`` a directory; ``*_key`` names
# (``api_key``, ``secret_key``) stay secret except these, which also match as the end of a
# longer name (``prompt_cache_key``).
_NOT_SECRET = frozenset({"key", "pwd", "max_tokens", "max_completion_tokens", "top_k"})
_NOT_SECRET_SUFFIX = ("cache_key", "sort_key", "partition_key", "primary_key", "foreign_key", "public_key",
                      "idempotency_key", "lookup_key", "object_key", "hash_key", "range_key", "row_key",
                      "routing_key", "shard_key", "group_key", "dedup_key",
                      "signed_headers")  # a presigned URL's X-Amz-SignedHeaders: header names
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[\-. ]+")

# Environment variables whose value is a secret.
_SECRET_ENV = re.compile(
    # OPENAI_API_KEY, GITHUB_TOKEN, AWS_SECRET, MYSQL_PWD, DB_PASS, GITHUB_PAT, SNOWFLAKE_JWT,
    # ..._KEY_2, ..._TOKEN_V2; any ...PASSWORD (PGPASSWORD) or ...APIKEY (WATSONX_ZENAPIKEY);
    # SECRET_ as a word (SECRET_KEY_BASE). Not PWD or OLDPWD: the working directory.
    r"(?:(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|CREDENTIALS?|PASS|PAT|JWT)|_PWD|PASSWORD|PASSWD|APIKEY)(?:_?V?\d+)?$"
    r"|(?:^|_)SECRET_"
    # Credentials named in the middle (litellm's AWS_BEARER_TOKEN_BEDROCK) or given inline as
    # JSON (GOOGLE_APPLICATION_CREDENTIALS_JSON); not the path of a file that holds one.
    r"|(?:^|_)(?:BEARER_TOKEN|CREDENTIALS?_JSON)(?!.*_(?:FILE|PATH|DIR|URL|URI)$)(?:_|$)",
    re.IGNORECASE,
)

# ``scheme://userinfo@`` — the userinfo (``user:password`` or a bare token) is the credential.
# It runs up to the last ``@`` of the authority (which ends at ``/``, ``?`` or ``#``), as URL
# parsers read it: a password with an ``@`` in it (``admin:p@ss@db``) is taken whole.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#\"'<>]+)@")
# ``?name=value`` / ``&name=value`` in a URL, checked against the secret key names.
_QUERY_PARAM = re.compile(r"([?&;])([A-Za-z0-9_.\-]+)=([^&#\s\"'<>]*)")

# Words that suggest a JSON text may hold something to redact (a cheap pre-check).
_SUSPECT = re.compile(r"(?i)key|secret|passw|passphrase|pwd|token|credential|auth|header|cookie|jwt|sig=|signature=|://")


@functools.lru_cache(maxsize=4096)
def is_secret_key(name: str) -> bool:
    """True when a parameter, dict key, header or query-parameter ``name`` looks like a credential."""
    norm = _SEPARATORS.sub("_", _CAMEL.sub("_", name.strip())).lower()
    if norm in _NOT_SECRET or norm.endswith(_NOT_SECRET_SUFFIX):
        return False
    return bool(_SECRET_WORD.search(norm))


# In a URL query a bare ``key`` is a credential (``?key=…``; a ``cache_key`` stays a lookup key),
# and so is a signature, alone or as the last word of the name: ``?sig=…`` (an Azure SAS),
# ``X-Amz-Signature=…`` (a presigned URL; its ``X-Amz-Credential`` and ``X-Amz-Security-Token``
# are secret by name).
_SIGNATURE = frozenset({"sig", "signature"})


def _is_secret_query(name: str) -> bool:
    lower = name.lower()
    return lower == "key" or _SEPARATORS.sub("_", lower).rpartition("_")[2] in _SIGNATURE or is_secret_key(name)


@functools.lru_cache(maxsize=1024)
def _is_secret_env(name: str) -> bool:
    return bool(_SECRET_ENV.search(name))


# ---------------------------------------------------------------------------- redact


def redact_url_credentials(text: str) -> str:
    """``text`` with URL userinfo and secret-named query parameters replaced by ``[redacted]``."""
    if "://" in text and "@" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    if "=" in text and ("?" in text or "&" in text or ";" in text):
        text = _QUERY_PARAM.sub(_redact_query_param, text)
    return text


def _redact_query_param(m: re.Match[str]) -> str:
    if m.group(3) and m.group(3) != REDACTED and _is_secret_query(m.group(2)):
        return f"{m.group(1)}{m.group(2)}={REDACTED}"
    return m.group(0)


def redact(value: Any) -> Any:
    """A copy of ``value`` with credentials replaced by ``"[redacted]"`` (see the module docstring).

    Dicts, lists and tuples are walked (tuples become lists); dataclasses and Pydantic models
    become dicts; other values are returned as they are. ``None``, booleans and empty strings
    under a secret key are kept: they tell that no credential was passed. The property names of a
    JSON schema (the keys of a ``"properties"`` object whose values are objects: a tool's
    ``password`` parameter) are names, not values, and are not redacted.
    """
    return _redact(value, False)


def _redact(value: Any, schema_properties: bool) -> Any:
    if isinstance(value, str):
        return redact_url_credentials(value) if len(value) > 3 else value
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k) and not (schema_properties and isinstance(v, Mapping)):
                out[k] = v if v is None or isinstance(v, bool) or (isinstance(v, str) and not v) else REDACTED
            else:
                out[k] = _redact(v, not schema_properties and k == "properties" and isinstance(v, Mapping))
        return out
    if isinstance(value, (list, tuple)):
        return [_redact(v, False) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _redact({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, False)
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return _redact(dump(mode="json"), False)
        except Exception:  # not a Pydantic v2 model after all: leave it
            return value
    return value


def maybe_secret(text: str) -> bool:
    """False when a (JSON) text cannot hold anything :func:`redact` would change: a cheap pre-check."""
    return bool(_SUSPECT.search(text))


# ---------------------------------------------------------------------------- known secrets

_lock = threading.Lock()
_known: dict[str, None] = {}  # insertion-ordered set
_version = 0
_cache: tuple[Any, tuple[str, ...]] = (None, ())


def remember_secret(value: Any) -> None:
    """Add ``value`` (a string; anything else is ignored) to the secrets :func:`scrub` removes.

    An ``Authorization``-style value (``"Bearer tok-…"``) is remembered whole and word by word.
    Values shorter than :data:`MIN_SECRET_LEN` are ignored.
    """
    if not isinstance(value, str):
        return
    value = value.strip()
    if len(value) < MIN_SECRET_LEN or value in REDACTED:
        return
    words = [w for w in value.split() if len(w) >= MIN_SECRET_LEN] if any(c.isspace() for c in value) else []
    global _version
    with _lock:
        added = False
        for v in (value, *words):
            if v not in _known:
                _known[v] = None
                added = True
        if not added:
            return
        while len(_known) > _MAX_KNOWN:
            del _known[next(iter(_known))]
        _version += 1


def remember_secrets_in(value: Any) -> None:
    """Remember every secret in a call's arguments: all strings under a secret-looking key (at any
    depth), and the credentials of every URL (userinfo, secret-named query parameters)."""
    _remember(value, False)


def _remember(value: Any, secret: bool) -> None:
    if isinstance(value, str):
        if secret:
            remember_secret(value)
        elif "://" in value or "=" in value:
            _remember_url_credentials(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _remember(v, secret or (isinstance(k, str) and is_secret_key(k)))
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            _remember(v, secret)
    elif secret and isinstance(value, (int, float)) and not isinstance(value, bool):
        remember_secret(str(value))


def _remember_url_credentials(text: str) -> None:
    if "@" in text:
        for m in _URL_USERINFO.finditer(text):
            userinfo = m.group(2)
            remember_secret(userinfo)
            _, _, password = userinfo.partition(":")
            remember_secret(password)
    for m in _QUERY_PARAM.finditer(text):
        if _is_secret_query(m.group(2)):
            remember_secret(m.group(3))


def forget_secrets() -> None:
    """Forget every remembered value (environment secrets stay known: they are read at each use)."""
    global _version
    with _lock:
        _known.clear()
        _version += 1


def known_secrets() -> tuple[str, ...]:
    """Every secret :func:`scrub` currently removes (remembered and from the environment), longest first."""
    global _cache
    env = os.environ
    from_env = tuple(v for n in env if _is_secret_env(n)
                     and len(v := (env.get(n) or "").strip()) >= MIN_SECRET_LEN and v not in REDACTED)
    key = (_version, from_env)
    cached_key, cached = _cache
    if cached_key == key:
        return cached
    with _lock:
        values = set(_known)
    values.update(from_env)
    values.update(form for v in list(values) for form in _encoded_forms(v))
    result = tuple(sorted(values, key=lambda s: (-len(s), s)))
    _cache = (key, result)
    return result


@functools.lru_cache(maxsize=2048)
def _encoded_forms(secret: str) -> tuple[str, ...]:
    """How ``secret`` reads when a provider or a library echoes it encoded: URL-encoded (a query
    string, a form body) and base64 (``Authorization: Basic``, a JSON web token's parts), standard
    and URL-safe. In base64 a value's characters depend on where it starts in the encoded bytes:
    one form for each of the three offsets, cut to the characters that encode the secret alone."""
    from base64 import b64encode, urlsafe_b64encode
    from urllib.parse import quote, quote_plus

    forms = {quote(secret, safe=""), quote_plus(secret)}
    raw = secret.encode("utf-8")
    for offset in range(3):
        first, end = -(-8 * offset // 6), 8 * (offset + len(raw)) // 6
        for encode in (b64encode, urlsafe_b64encode):
            forms.add(encode(b"\0" * offset + raw).decode("ascii")[first:end])
    forms.discard(secret)
    return tuple(f for f in forms if len(f) >= MIN_SECRET_LEN)


# ---------------------------------------------------------------------------- scrub


def scrub(text: str) -> str:
    """``text`` with every known secret value and URL credential replaced by ``"[redacted]"``.

    Cheap on short texts and when no secret is known: it is meant to run on every error message
    and traceback before it is recorded or printed. ``None`` and empty strings are returned as
    they are.
    """
    if not text:
        return text
    if not text.isascii():
        text = _encodable(text)
    if len(text) < 4:
        return text
    # Known values first: one holding an ``@`` or an ``&`` would be cut in two by the URL
    # patterns below, which would then leave its second half in the text.
    if len(text) >= MIN_SECRET_LEN:
        for secret in known_secrets():
            if secret in text:
                text = text.replace(secret, REDACTED)
    return redact_url_credentials(text)


def _encodable(text: str) -> str:
    """``text`` with unpaired surrogates (a file name decoded with ``surrogateescape``, say)
    written as ``\\udce9``: an error text holding one could not be recorded or printed, which
    crashed the run that raised it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def scrub_value(value: Any) -> Any:
    """:func:`scrub` applied to every string in a JSON-like value (dict keys included)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {scrub(k) if isinstance(k, str) else k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v) for v in value]
    return value


__all__ = [
    "MIN_SECRET_LEN", "REDACTED", "forget_secrets", "is_secret_key", "known_secrets", "maybe_secret",
    "redact", "redact_url_credentials", "remember_secret", "remember_secrets_in", "scrub", "scrub_value",
]
