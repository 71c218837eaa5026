"""The bus's own errors: pika's exceptions never leave the ``connector.bus.rabbitmq*`` modules."""

from __future__ import annotations


class BusError(Exception):
    """Something went wrong talking to the broker."""


class BusUnavailable(BusError):
    """The broker cannot be reached or the connection/channel was lost (transient: reconnect)."""


class AccessRefused(BusUnavailable):
    """The broker refused the credentials or the virtual host.

    Retried like any connection failure (a password being rotated may come right), but
    ``Consumer.run`` gives up after ``ConsumerSettings.auth_attempts`` refusals in a row.
    """


class TopologyError(BusError):
    """The broker refused a declaration or a publish target (missing exchange, different arguments)."""


class ConfigError(BusError):
    """The connection settings are missing or invalid (not transient)."""
