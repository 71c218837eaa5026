"""Broker connection settings: from the environment or a TOML file, never from the command line.

The URL carries the password, so it must not appear in ``ps`` output or shell history:

- ``IVPUSH_AMQP_URL`` (or ``IVPUSH_AMQP_URL_FILE``, a file holding it: Docker/Kubernetes
  secrets), else
- the ``[amqp]`` table of the config file (``--config`` / ``IVPUSH_CONFIG``)::

      [amqp]
      url = "amqps://ivpush:secret@rabbit.example.org:5671/billing"
      ca_file = "/etc/ivpush/ca.pem"        # trust anchors (default: the system's)
      cert_file = "/etc/ivpush/client.pem"  # client certificate (optional, mutual TLS)
      key_file = "/etc/ivpush/client.key"
      server_hostname = "rabbit.example.org" # name checked in the certificate (default: URL host)

TLS (``amqps``) always verifies the server's certificate chain and host name. Environment
variables ``IVPUSH_AMQP_CA_FILE``, ``IVPUSH_AMQP_CERT_FILE``, ``IVPUSH_AMQP_KEY_FILE`` and
``IVPUSH_AMQP_SERVER_HOSTNAME`` override the file's values.

The connector's settings model, ``connector.config``, reads these names too (with every other
setting, and each key's source named in its errors); its ``Settings.amqp_settings()`` builds an
:class:`AmqpSettings`. :func:`load_settings` stays for callers that need only the broker.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from connector.bus.errors import ConfigError

URL_ENV = "IVPUSH_AMQP_URL"
URL_FILE_ENV = "IVPUSH_AMQP_URL_FILE"
CONFIG_ENV = "IVPUSH_CONFIG"
TLS_ENV = {
    "ca_file": "IVPUSH_AMQP_CA_FILE",
    "cert_file": "IVPUSH_AMQP_CERT_FILE",
    "key_file": "IVPUSH_AMQP_KEY_FILE",
    "server_hostname": "IVPUSH_AMQP_SERVER_HOSTNAME",
}


@dataclass(frozen=True)
class AmqpSettings:
    """Where and how to connect.

    Attributes:
        url: ``amqp://`` or ``amqps://`` URL (with credentials, virtual host and pika query options).
        ca_file: CA bundle to verify the server with (default: the system's trust store).
        cert_file: Client certificate for mutual TLS.
        key_file: Client key for mutual TLS.
        server_hostname: Name to verify in the server certificate (default: the URL's host).
        connection_name: Shown in the broker's connection list.
    """

    url: str = field(repr=False)  # it carries the password: use redacted()
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_hostname: str | None = None
    connection_name: str = "ivpush"

    @property
    def tls(self) -> bool:
        """The URL asks for TLS."""
        return urlsplit(self.url).scheme == "amqps"

    @property
    def host(self) -> str:
        """The broker host of the URL."""
        return urlsplit(self.url).hostname or "localhost"

    def redacted(self) -> str:
        """The URL without its password, for logs."""
        return redact(self.url)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the certificate chain and host name.

        Raises:
            ConfigError: A certificate or key file cannot be read.
        """
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.cert_file:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(f"TLS files: {error.__class__.__name__}: {error}") from error
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


def redact(url: str) -> str:
    """``amqp://user:***@host/vhost``: the URL safe to log, even one that does not parse.

    Everything between ``://`` and the **last** ``@`` is taken as the user information (a
    password that was not percent-encoded may hold ``/``, ``:``, ``#`` or ``@``), and all of it
    after the first ``:`` is masked.
    """
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not (sep and at):
        return url
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}:***@{hostpart}" if colon else url


def check_url(url: str) -> None:
    """Check that a broker URL can be connected to as written.

    Raises:
        ValueError: Its scheme is not amqp/amqps or its port is not a number from 1 to 65535.
            The message quotes the URL redacted, never a piece of it.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ValueError(f"{redact(url)} is not a URL") from None
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"the URL scheme must be amqp or amqps, not '{parts.scheme}'")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if port == 0:
        raise ValueError(f"the port of {redact(url)} is not a number from 1 to 65535")


def load_settings(
    config_path: Path | None = None, environ: Mapping[str, str] | None = None, connection_name: str = "ivpush"
) -> AmqpSettings:
    """Settings from the environment, else from the config file.

    Args:
        config_path: TOML file with an ``[amqp]`` table (default: ``$IVPUSH_CONFIG``).
        environ: The environment (default: ``os.environ``).
        connection_name: Name shown in the broker's connection list.

    Raises:
        ConfigError: No URL anywhere, an unreadable file or a malformed URL (``check_url``).
    """
    env = os.environ if environ is None else environ
    if config_path is None and env.get(CONFIG_ENV):
        config_path = Path(env[CONFIG_ENV])
    table: dict[str, object] = {}
    if config_path is not None:
        try:
            table = dict(tomllib.loads(config_path.read_text(encoding="utf-8")).get("amqp", {}))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"config file {config_path}: {error}") from error
    url = env.get(URL_ENV) or _read_url_file(env.get(URL_FILE_ENV)) or str(table.get("url") or "")
    if not url:
        raise ConfigError(f"no broker URL: set {URL_ENV} (or {URL_FILE_ENV}), or [amqp] url in the config file")
    try:
        check_url(url)
    except ValueError as error:
        raise ConfigError(f"broker URL: {error}") from None
    tls = {name: env.get(var) or (str(table[name]) if table.get(name) else None) for name, var in TLS_ENV.items()}
    return AmqpSettings(url=url, connection_name=connection_name, **tls)


def _read_url_file(path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"{URL_FILE_ENV}: cannot read {path}: {error.strerror}") from error
