"""One Host per request (RFC 9112 §3.2), for HTTP servers that cannot refuse a second.

gunicorn answers 400 to a request with two Host header lines itself. granian (2.8.9) has
no setting for it: it joins repeated header lines with "," into one WSGI value, so two
Host lines reach the app as `HTTP_HOST: "a,b"`. A comma is never part of a host name or
an IP literal, so a Host holding one is refused here as the server would have.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from feeds.web import plain_answer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

BODY = "Bad Request: more than one Host header field\n"


class SingleHost:
    """WSGI middleware: 400 for a request whose Host came twice (or holds a comma)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if "," not in environ.get("HTTP_HOST", ""):
            return self.app(environ, start_response)
        # The Host value is not echoed: the answer says what was wrong, not what was sent.
        return plain_answer(start_response, "400 Bad Request", BODY)
