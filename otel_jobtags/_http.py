"""One JSON GET over urllib, with failures put in words: shared by the query clients.

The Loki client and the ``serve`` client ask an HTTP API for JSON the same
way; each gives its own error class, and the words naming the server.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

__all__ = ["get_json"]


def get_json(
    url: str,
    *,
    headers: Mapping[str, str],
    timeout: float,
    server: str,
    base: str,
    fail: Callable[[str, int | None, str | None], NoReturn],
) -> Any:
    """GET ``url`` and return its parsed JSON body.

    Args:
        url: the whole URL, query string included.
        headers: the request's headers.
        timeout: seconds to wait for an answer.
        server: what the server is, for messages, e.g. ``"Loki"``.
        base: the server's base URL, for messages.
        fail: raises the caller's error from a message, the HTTP status (if
            the server answered) and the body it answered with.

    Every failure ends in ``fail``: an HTTP error status (the body's JSON
    ``error`` member, when it has one, is the message), no answer within
    ``timeout``, no connection, or a body that is not JSON.
    """
    where = f"{server} at {base}"
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload: bytes = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read(4096).decode("utf-8", "replace").strip()
        message = body
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(body).get("error") or body)
        fail(f"{where} answered HTTP {exc.code} {exc.reason}: {message or '(no message)'}", exc.code, body)
    except TimeoutError:
        fail(f"{where} did not answer within {timeout:g} s", None, None)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            fail(f"{where} did not answer within {timeout:g} s", None, None)
        fail(f"Cannot reach {where}: {exc.reason}", None, None)
    except OSError as exc:
        fail(f"Cannot reach {where}: {exc}", None, None)
    try:
        return json.loads(payload)
    except ValueError:
        snippet = payload[:200].decode("utf-8", "replace")
        fail(f"{where} answered something that is not JSON: {snippet!r}", None, None)
