"""The connector's settings as one typed model: a section per concern, every key with a default.

The model only validates values; where they come from (command line, environment, secret files,
TOML file) is :mod:`connector.config.sources`, and :func:`connector.config.load` puts the two
together so that every key's source is known for errors and ``ivpush check --show``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, SecretStr, ValidationInfo, field_validator
from pydantic.functional_validators import AfterValidator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connector.adapters.archive import DEFAULT_MAX_BYTES
from connector.adapters.sanity import DEFAULT_WINDOW_TEXT, window_text
from connector.bus.config import AmqpSettings, check_url
from connector.bus.errors import ConfigError
from connector.bus.topology import FORMATS
from connector.config.console import ConsoleSection
from connector.config.destinations import ChargeItemSection, DftSection, ForwardSection
from connector.config.listen import ListenSection
from connector.config.redact import display
from connector.config.retention import RetentionSection
from connector.config.section import Section
from connector.config.topology import TopologySection
from connector.model import ClaimType, EmitOn
from connector.observability.server import DEFAULT_HOST, DEFAULT_PORT

STATE_SCHEMES = ("postgresql", "postgres")


class AmqpSection(Section):
    """The broker: where, how securely, and how the consumer paces itself."""

    url: SecretStr | None = Field(
        default=None, description="Broker URL `amqp://` or `amqps://` with credentials and virtual host (secret)."
    )
    ca_file: Path | None = Field(
        default=None, description="CA bundle to verify the broker with (default: the system's)."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(default=None, description="Client key for mutual TLS (needs `cert_file`).")
    server_hostname: str | None = Field(
        default=None, description="Name checked in the broker certificate (default: URL host)."
    )
    prefix: str = Field(
        default="ivpush",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Prefix of every exchange and queue name.",
    )
    prefetch: int = Field(default=200, ge=1, le=65535, description="Unacknowledged deliveries in flight.")
    batch_size: int | None = Field(
        default=None, ge=1, description="Deliveries per store transaction (default and cap: `prefetch`)."
    )
    batch_wait: float = Field(default=0.05, ge=0, description="Seconds to wait to fill a batch.")
    reconnect_max: float = Field(default=30.0, gt=0, description="Longest reconnect back-off, seconds.")
    retry_max: float = Field(
        default=60.0, gt=0, description="Longest back-off before retrying unroutable output, seconds."
    )
    shards: int = Field(default=0, ge=0, description="Consistent-hash input shards (0: one shared input queue).")
    shard: int | None = Field(
        default=None,
        ge=0,
        validate_default=True,
        description="The shard this instance consumes (required with `shards`).",
    )
    declare: bool = Field(default=True, description="Declare the exchanges and queues at connect.")
    auth_attempts: int = Field(
        default=5,
        ge=1,
        description="Connection attempts the broker may refuse (credentials, virtual host) in a row before "
        "`ivpush consume` exits 3.",
    )

    @field_validator("url")
    @classmethod
    def _amqp_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            check_url(url.get_secret_value())  # scheme and port; the message shows the URL redacted
        return url

    @field_validator("key_file")
    @classmethod
    def _key_needs_cert(cls, key_file: Path | None, info: ValidationInfo) -> Path | None:
        if key_file is not None and info.data.get("cert_file") is None:
            raise ValueError("a client key needs amqp.cert_file (the certificate it belongs to)")
        return key_file

    @field_validator("shard")
    @classmethod
    def _shard_in_range(cls, shard: int | None, info: ValidationInfo) -> int | None:
        shards = info.data.get("shards")
        if shards is None:  # shards itself is invalid: reported there
            return shard
        if shards and shard is None:
            raise ValueError(f"required when amqp.shards is set ({shards}): the shard this instance consumes")
        if shard is not None and not shards:
            raise ValueError("set only together with amqp.shards (the number of shards)")
        if shard is not None and shard >= shards:
            raise ValueError(f"must be below amqp.shards ({shards}): 0 to {shards - 1}")
        return shard


class StateSection(Section):
    """Where the dedup keys, encounters and outbox live."""

    url: SecretStr = Field(
        default=SecretStr("ivpush-state.db"),
        description="SQLite file path, `:memory:`, or `postgresql://user:password@host/db` (secret).",
    )

    @field_validator("url")
    @classmethod
    def _known_store(cls, url: SecretStr) -> SecretStr:
        value = url.get_secret_value()
        if not value.strip():
            raise ValueError("empty: give a SQLite file path, ':memory:' or a postgresql:// URL")
        if "://" in value and urlsplit(value).scheme not in STATE_SCHEMES:
            scheme = urlsplit(value).scheme
            raise ValueError(f"unsupported scheme '{scheme}': give a SQLite file path, ':memory:' or postgresql://")
        return url

    @property
    def spec(self) -> str:
        """The store to open (the secret value: give it to ``bootstrap.open_store``, never to a log)."""
        return self.url.get_secret_value()


class CodingSection(Section):
    """How inputs become charges."""

    claim_type: ClaimType = Field(default=ClaimType.FACILITY, description="Claim the lines are for.")
    payer: str = Field(default="default", min_length=1, description="Payer policy when the feed names none.")
    emit_on: EmitOn = Field(default=EmitOn.CLOSE, description="Emit at encounter close, or after every change.")
    idle_seconds: float = Field(
        default=4 * 3600.0, ge=0, description="Close (and charge) encounters idle this long; 0: never."
    )
    sweep_seconds: float = Field(default=60.0, gt=0, description="Seconds between idle sweeps.")
    zone: str = Field(
        default="", description="Facility zone (IANA name) times are dated in; empty: sent offsets decide, else UTC."
    )
    mappings: Path | None = Field(default=None, description="Site mappings directory overlaying the shipped defaults.")
    formats: tuple[str, ...] = Field(default=FORMATS, description="Output formats (a list, or comma-separated in env).")
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1, description="Inputs larger than this are parked, bytes.")
    time_window: Annotated[str, AfterValidator(window_text)] = Field(
        default=DEFAULT_WINDOW_TEXT,
        description="Accepted input times, FROM..TO (ISO dates, UTC); others are bad_timestamp rejects.",
    )

    @field_validator("payer")
    @classmethod
    def _payer_lower(cls, payer: str) -> str:
        return payer.strip().lower()

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        if not zone:
            return zone
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone '{zone}': use an IANA name such as UTC or America/Chicago") from error
        return zone

    @field_validator("formats", mode="before")
    @classmethod
    def _split_formats(cls, formats: object) -> object:
        if isinstance(formats, str):
            return tuple(part.strip() for part in formats.split(",") if part.strip())
        return formats

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in formats if name not in FORMATS]
        if unknown or not formats:
            raise ValueError(f"allowed formats are {', '.join(FORMATS)} (at least one), not {', '.join(unknown)}")
        return tuple(dict.fromkeys(formats))


class MetricsSection(Section):
    """The Prometheus endpoint (also serves /healthz and /readyz)."""

    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535, description="HTTP port; 0 turns the endpoint off.")
    host: str = Field(
        default=DEFAULT_HOST, min_length=1, description="Address to listen on (0.0.0.0: every interface)."
    )


class LoggingSection(Section):
    """Logs on stderr: ids and counts, never PHI."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Lowest level logged."
    )
    format: Literal["json", "text"] = Field(
        default="json", description="One JSON object per line, or text for a terminal."
    )

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, level: object) -> object:
        return level.strip().upper() if isinstance(level, str) else level


class Settings(BaseSettings):
    """Every setting of the connector.

    Build it with :func:`connector.config.load` (command line > environment > secret files >
    TOML file > defaults); constructing it directly validates the values given and applies the
    defaults, reading nothing.
    """

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    amqp: AmqpSection = AmqpSection()
    state: StateSection = StateSection()
    coding: CodingSection = CodingSection()
    metrics: MetricsSection = MetricsSection()
    logging: LoggingSection = LoggingSection()
    listen: ListenSection = ListenSection()
    dft: DftSection = DftSection()
    chargeitem: ChargeItemSection = ChargeItemSection()
    forward: ForwardSection = ForwardSection()
    topology: TopologySection = TopologySection()
    retention: RetentionSection = RetentionSection()
    console: ConsoleSection = ConsoleSection()
    shutdown_deadline: float = Field(default=10.0, gt=0, description="Seconds to finish the batch and drain at stop.")

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the values given: ``load`` layers the sources itself.

        It must know each key's source (for errors and ``--show``), which pydantic-settings does not
        record, and the old ``IVPUSH_STATE`` would collide with ``state`` under pydantic-settings' prefix rule.
        """
        return (init_settings,)

    def source_of(self, key: str) -> str:
        """Where a dotted key's value came from (``default`` when nobody set it)."""
        return self._sources.get(key, "default")

    def amqp_settings(self, connection_name: str = "ivpush") -> AmqpSettings:
        """The broker connection settings (the bus layer's type).

        Raises:
            ConfigError: No broker URL was given.
        """
        amqp = self.amqp
        if amqp.url is None:
            raise ConfigError(
                "no broker URL: set IVPUSH_AMQP_URL (or IVPUSH_AMQP_URL_FILE), or [amqp] url in the config file"
            )
        return AmqpSettings(
            url=amqp.url.get_secret_value(),
            ca_file=None if amqp.ca_file is None else str(amqp.ca_file),
            cert_file=None if amqp.cert_file is None else str(amqp.cert_file),
            key_file=None if amqp.key_file is None else str(amqp.key_file),
            server_hostname=amqp.server_hostname,
            connection_name=connection_name,
        )

    def redacted(self) -> dict[str, str]:
        """Every dotted key with its value as text, secrets redacted: fit for a log line."""
        return {key: display(value) for key, value in dump_leaves(self).items()}

    @property
    def batch_size(self) -> int:
        """Deliveries per store transaction: ``amqp.batch_size`` capped at ``amqp.prefetch``."""
        return min(self.amqp.batch_size or self.amqp.prefetch, self.amqp.prefetch)


def with_sources(settings: Settings, sources: dict[str, str]) -> Settings:
    """Attach each key's source to a loaded model (kept out of the validated fields)."""
    settings._sources = dict(sources)  # the private attribute is ours
    return settings


def dump_leaves(settings: Settings) -> dict[str, Any]:
    """Every dotted key with its (unredacted) value, in model order."""
    leaves: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, Section):
            for key in type(value).model_fields:
                leaves[f"{name}.{key}"] = getattr(value, key)
        else:
            leaves[name] = value
    return leaves
