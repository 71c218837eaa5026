"""Serve the console with waitress: a pure-Python WSGI server, several threads, no reverse proxy needed.

Bound to 127.0.0.1 by default. ``base_path`` mounts the console under a prefix (``/console``)
for a reverse proxy that forwards that path (waitress' ``url_prefix``: links and the
stylesheet then carry the prefix). Proxy headers (``X-Forwarded-*``) are not trusted.
"""

from __future__ import annotations

from collections.abc import Callable

from waitress.server import create_server

from connector.console.reader import StateSource

WSGIApp = Callable[..., object]


class BasePathError(ValueError):
    """A base path that is not an absolute URL path."""


def base_prefix(base_path: str) -> str:
    """``/`` → ``""``; ``/console/`` → ``/console``.

    Raises:
        BasePathError: It does not start with ``/``, or holds ``?``, ``#``, ``..``, a backslash or spaces.
    """
    if not base_path.startswith("/") or any(c in base_path for c in "?#\\ \t") or ".." in base_path:
        raise BasePathError(f"--base-path must be an absolute URL path such as /console, not {base_path!r}")
    return base_path.rstrip("/")


def serve(
    app: WSGIApp,
    source: StateSource,
    host: str,
    port: int,
    base_path: str,
    threads: int = 4,
    actions: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    """Bind, say where the console is (one line through ``announce``), serve until interrupted.

    Args:
        app: The console (``create_app``).
        source: Its state, closed when the server stops.
        host: Address to bind (127.0.0.1 unless told otherwise).
        port: Port (0: any free one; the line says which).
        base_path: URL prefix the console is mounted under (``/``: none).
        threads: Requests answered at once.
        actions: Whether a credential enables actions (said in the announcement).
        announce: Where the ``ivpush console on http://…`` line goes.
    """
    prefix = base_prefix(base_path)
    server = create_server(
        app,
        host=host,
        port=port,
        url_prefix=prefix,
        threads=threads,
        ident="",
        clear_untrusted_proxy_headers=True,
        expose_tracebacks=False,
    )
    bound_host, bound_port = server.effective_host, server.effective_port
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    mode = "actions enabled for the configured credential" if actions else "read-only"
    announce(f"ivpush console on http://{shown}:{bound_port}{prefix}/ ({mode}; Ctrl-C stops it)")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        source.close()
