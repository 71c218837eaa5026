"""The settings model: precedence, older variable names, secret files, errors naming key and source."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from connector.bus.config import load_settings
from connector.bus.errors import ConfigError
from connector.config import Settings, SettingsError, collect, keys, load, redact_url
from connector.config.doc import END, START, key_table, replace_table
from connector.config.keys import ENV_ALIASES
from connector.config.model import LoggingSection
from connector.model import ClaimType
from connector.observability.logging import FORMATS as LOG_FORMATS
from connector.service import EmitOn

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Sup3rSecretPw"
URL = f"amqps://ivpush:{SECRET}@rabbit.example.org:5671/billing"

# A valid value (as an environment variable would give it) and its parsed form, for every aliased key.
SAMPLES: dict[str, tuple[str, object]] = {
    "amqp.url": (URL, None),
    "amqp.ca_file": ("/etc/ivpush/ca.pem", Path("/etc/ivpush/ca.pem")),
    "amqp.cert_file": ("/etc/ivpush/client.pem", Path("/etc/ivpush/client.pem")),
    "amqp.key_file": ("/etc/ivpush/client.key", Path("/etc/ivpush/client.key")),
    "amqp.server_hostname": ("rabbit.example.org", "rabbit.example.org"),
    "amqp.prefix": ("site7", "site7"),
    "state.url": ("/var/lib/ivpush/state.db", None),
    "coding.zone": ("America/Chicago", "America/Chicago"),
    "coding.mappings": ("/etc/ivpush/mappings", Path("/etc/ivpush/mappings")),
    "metrics.port": ("9100", 9100),
    "metrics.host": ("0.0.0.0", "0.0.0.0"),
    "logging.level": ("debug", "DEBUG"),
    "logging.format": ("text", "text"),
}


def value_of(settings: Settings, key: str) -> object:
    section, _, leaf = key.rpartition(".")
    holder = getattr(settings, section) if section else settings
    return getattr(holder, leaf)


def problems_of(**kwargs: object) -> list[str]:
    _, problems = collect(**kwargs)  # type: ignore[arg-type]
    return [str(problem) for problem in problems]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and precedence ---------------------------------------------------------------


def test_nothing_given_yields_the_documented_defaults_all_from_default() -> None:
    settings = load(environ={})
    assert settings.amqp.url is None
    assert settings.amqp.prefetch == 200
    assert settings.state.spec == "ivpush-state.db"
    assert settings.coding.claim_type is ClaimType.FACILITY
    assert settings.coding.emit_on is EmitOn.CLOSE
    assert settings.coding.formats == ("json", "dft", "chargeitem")
    assert (settings.metrics.port, settings.metrics.host) == (9464, "127.0.0.1")
    assert (settings.logging.level, settings.logging.format) == ("INFO", "json")
    assert settings.shutdown_deadline == 10.0
    assert {settings.source_of(key) for key in keys()} == {"default"}


def test_each_source_wins_over_the_ones_below_it(tmp_path: Path) -> None:
    config = write(tmp_path / "ivpush.toml", '[amqp]\nurl = "amqp://toml:pw@toml-host/"\n')
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    write(secrets / "ivpush_amqp_url", "amqp://dir:pw@dir-host/\n")
    url_file = write(tmp_path / "url", "amqp://file:pw@file-host/\n")
    env = {"IVPUSH_AMQP_URL_FILE": str(url_file), "IVPUSH_AMQP_URL": "amqp://env:pw@env-host/"}
    overrides = {"amqp.url": "amqp://cli:pw@cli-host/"}

    def host(**kwargs: object) -> tuple[str, str]:
        settings = load(config, secrets_dir=secrets, **kwargs)  # type: ignore[arg-type]
        return settings.amqp_settings().host, settings.source_of("amqp.url")

    assert host(environ=env, overrides=overrides) == ("cli-host", "command line")
    assert host(environ=env) == ("env-host", "env IVPUSH_AMQP_URL")
    assert host(environ={"IVPUSH_AMQP_URL_FILE": str(url_file)}) == (
        "file-host",
        f"file {url_file} (env IVPUSH_AMQP_URL_FILE)",
    )
    assert host(environ={}) == ("dir-host", f"secret file {secrets / 'ivpush_amqp_url'}")
    (secrets / "ivpush_amqp_url").unlink()
    assert host(environ={}) == ("toml-host", str(config))


def test_precedence_is_per_key_not_per_source(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "[amqp]\nprefetch = 10\nbatch_wait = 0.5\n[coding]\nemit_on = 'change'\n")
    settings = load(config, {"amqp.batch_wait": 0.25, "amqp.shards": None}, environ={"IVPUSH_AMQP__PREFETCH": "20"})
    assert (settings.amqp.prefetch, settings.source_of("amqp.prefetch")) == (20, "env IVPUSH_AMQP__PREFETCH")
    assert (settings.amqp.batch_wait, settings.source_of("amqp.batch_wait")) == (0.25, "command line")
    assert (settings.coding.emit_on, settings.source_of("coding.emit_on")) == (EmitOn.CHANGE, str(config))
    assert (settings.amqp.shards, settings.source_of("amqp.shards")) == (0, "default")  # None: not given


def test_the_config_file_can_be_named_by_ivpush_config(tmp_path: Path) -> None:
    config = write(tmp_path / "c.toml", "shutdown_deadline = 3.5\n")
    settings = load(environ={"IVPUSH_CONFIG": str(config)})
    assert (settings.shutdown_deadline, settings.source_of("shutdown_deadline")) == (3.5, str(config))


def test_canonical_nested_variables_set_every_kind_of_value() -> None:
    settings = load(
        environ={
            "IVPUSH_AMQP__DECLARE": "false",
            "IVPUSH_AMQP__SHARDS": "4",
            "IVPUSH_AMQP__SHARD": "3",
            "IVPUSH_CODING__FORMATS": "json, dft,json",
            "IVPUSH_CODING__CLAIM_TYPE": "professional",
            "IVPUSH_SHUTDOWN_DEADLINE": "2",
            "IVPUSH_STATE__URL": "",  # empty: unset
        }
    )
    assert settings.amqp.declare is False
    assert (settings.amqp.shards, settings.amqp.shard) == (4, 3)
    assert settings.coding.formats == ("json", "dft")
    assert settings.coding.claim_type is ClaimType.PROFESSIONAL
    assert settings.shutdown_deadline == 2.0
    assert settings.source_of("state.url") == "default"


def test_settings_built_directly_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVPUSH_AMQP__PREFETCH", "7")
    monkeypatch.setenv("IVPUSH_AMQP_URL", URL)
    settings = Settings()
    assert (settings.amqp.prefetch, settings.amqp.url) == (200, None)


def test_batch_size_defaults_to_and_is_capped_at_prefetch() -> None:
    assert load(environ={"IVPUSH_AMQP__PREFETCH": "50"}).batch_size == 50
    assert load(environ={"IVPUSH_AMQP__PREFETCH": "50", "IVPUSH_AMQP__BATCH_SIZE": "80"}).batch_size == 50
    assert load(environ={"IVPUSH_AMQP__BATCH_SIZE": "20"}).batch_size == 20


def test_an_override_for_a_key_the_model_lacks_is_a_programming_error() -> None:
    with pytest.raises(KeyError, match=r"amqp\.prefech"):
        load(overrides={"amqp.prefech": 1}, environ={})


# --- older names, the existing [amqp] table, the bus API -------------------------------------


@pytest.mark.parametrize("key", sorted(ENV_ALIASES))
def test_every_older_variable_name_still_sets_its_key(key: str) -> None:
    raw, parsed = SAMPLES[key]
    needed = {"IVPUSH_AMQP__CERT_FILE": "/c.pem"} if key == "amqp.key_file" else {}
    for alias in ENV_ALIASES[key]:
        settings = load(environ={alias: raw, **needed})
        assert settings.source_of(key) == f"env {alias}"
        if parsed is not None:
            assert value_of(settings, key) == parsed
    assert set(SAMPLES) == set(ENV_ALIASES)


def test_an_older_and_a_new_name_with_different_values_are_a_conflict() -> None:
    environ = {"IVPUSH_AMQP__PREFIX": "a", "IVPUSH_TOPOLOGY_PREFIX": "b"}
    assert problems_of(environ=environ) == [
        "env IVPUSH_TOPOLOGY_PREFIX: amqp.prefix: conflicts with IVPUSH_AMQP__PREFIX (which wins); "
        "set only one of IVPUSH_AMQP__PREFIX, IVPUSH_TOPOLOGY_PREFIX"
    ]
    assert load(environ={"IVPUSH_AMQP__PREFIX": "a", "IVPUSH_TOPOLOGY_PREFIX": "a"}).amqp.prefix == "a"


def test_the_existing_amqp_table_gives_the_same_connection_as_the_bus_loader(tmp_path: Path) -> None:
    config = write(
        tmp_path / "old.toml",
        f'[amqp]\nurl = "{URL}"\nca_file = "/etc/ivpush/ca.pem"\ncert_file = "/etc/ivpush/client.pem"\n'
        'key_file = "/etc/ivpush/client.key"\nserver_hostname = "rabbit.example.org"\n',
    )
    environ = {"IVPUSH_AMQP_SERVER_HOSTNAME": "other.example.org"}
    expected = load_settings(config, environ, connection_name="ivpush consume")
    assert load(config, environ=environ).amqp_settings("ivpush consume") == expected
    assert expected.server_hostname == "other.example.org"


def test_amqp_settings_without_a_url_says_how_to_give_one() -> None:
    with pytest.raises(ConfigError, match="IVPUSH_AMQP_URL"):
        load(environ={}).amqp_settings()


# --- secrets from files ----------------------------------------------------------------------


def test_state_url_file_reads_a_postgresql_url_with_its_password(tmp_path: Path) -> None:
    secret = write(tmp_path / "state", f"postgresql://ivpush:{SECRET}@db/ivpush\n")
    settings = load(environ={"IVPUSH_STATE_FILE": str(secret)})
    assert settings.state.spec == f"postgresql://ivpush:{SECRET}@db/ivpush"
    assert settings.redacted()["state.url"] == "postgresql://ivpush:***@db/ivpush"


def test_a_value_variable_wins_over_its_file_variable(tmp_path: Path) -> None:
    secret = write(tmp_path / "url", "amqp://file-host/")
    settings = load(environ={"IVPUSH_AMQP__URL_FILE": str(secret), "IVPUSH_AMQP__URL": "amqp://env-host/"})
    assert settings.amqp_settings().host == "env-host"


def test_unreadable_or_empty_secret_files_are_named_with_their_variable(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty", "\n")
    assert problems_of(environ={"IVPUSH_AMQP_URL_FILE": str(tmp_path / "missing")}) == [
        f"env IVPUSH_AMQP_URL_FILE: amqp.url: cannot read {tmp_path / 'missing'}: No such file or directory"
    ]
    assert problems_of(environ={"IVPUSH_STATE_FILE": str(empty)}) == [
        f"env IVPUSH_STATE_FILE: state.url: {empty} is empty"
    ]


def test_a_secrets_directory_named_by_the_environment_must_exist(tmp_path: Path) -> None:
    assert problems_of(environ={"IVPUSH_SECRETS_DIR": str(tmp_path / "nope")}) == [
        f"env IVPUSH_SECRETS_DIR: secrets_dir: {tmp_path / 'nope'} is not a directory"
    ]
    write(tmp_path / "IVPUSH_STATE", "postgresql://u:pw@db/x")
    settings = load(environ={"IVPUSH_SECRETS_DIR": str(tmp_path)})
    assert settings.source_of("state.url") == f"secret file {tmp_path / 'IVPUSH_STATE'}"


# --- problems name the key, the source, and what is allowed --------------------------------


def test_every_problem_is_reported_at_once_with_source_and_key(tmp_path: Path) -> None:
    config = write(
        tmp_path / "c.toml",
        "shutdown_deadline = 0\nlog_level = 'x'\n[amqp]\nprefech = 3\n"
        "[coding]\nzone = 'Mars/Base'\nformats = ['xml']\n",
    )
    environ = {
        "IVPUSH_AMQP__PREFETCH": "many",
        "IVPUSH_LOGGING__LEVEL": "chatty",
        "IVPUSH_METRIC__PORT": "1",
        "IVPUSH_STATE": "mysql://root:pw@db/x",
    }
    problems = problems_of(config_path=config, environ=environ)
    assert problems == [
        "env IVPUSH_METRIC__PORT: metric.port: unknown section 'metric'; "
        "sections: amqp, state, coding, metrics, logging, listen, dft, chargeitem, forward, topology, retention, "
        "console",
        f"{config}: log_level: unknown; allowed: tables [amqp], [state], [coding], [metrics], [logging], [listen], "
        "[dft], [chargeitem], [forward], [topology], [retention], [console] and keys shutdown_deadline",
        f"{config}: amqp.prefech: unknown key; [amqp] allows: url, ca_file, cert_file, key_file, server_hostname, "
        "prefix, prefetch, batch_size, batch_wait, reconnect_max, retry_max, shards, shard, declare, auth_attempts",
        "env IVPUSH_AMQP__PREFETCH: amqp.prefetch: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')",
        "env IVPUSH_STATE: state.url: unsupported scheme 'mysql': give a SQLite file path, ':memory:' or postgresql://",
        f"{config}: coding.zone: unknown time zone 'Mars/Base': use an IANA name such as UTC or America/Chicago",
        f"{config}: coding.formats: allowed formats are json, dft, chargeitem (at least one), not xml",
        "env IVPUSH_LOGGING__LEVEL: logging.level: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or "
        "'CRITICAL' (got 'CHATTY')",
        f"{config}: shutdown_deadline: Input should be greater than 0 (got 0)",
    ]
    with pytest.raises(SettingsError) as raised:
        load(config, environ=environ)
    assert str(raised.value).splitlines() == problems
    assert isinstance(raised.value, ConfigError)  # the CLI's existing handlers catch it


def test_a_typo_in_a_nested_variable_names_the_keys_of_its_section() -> None:
    assert problems_of(environ={"IVPUSH_AMQP__PREFECH": "3", "IVPUSH_FAULT": "x"}) == [
        "env IVPUSH_AMQP__PREFECH: amqp.prefech: unknown setting; [amqp] has: url, ca_file, cert_file, "
        "key_file, server_hostname, prefix, prefetch, batch_size, batch_wait, reconnect_max, retry_max, "
        "shards, shard, declare, auth_attempts"
    ]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"IVPUSH_AMQP__SHARDS": "4"},
            "default: amqp.shard: required when amqp.shards is set (4): the shard this instance consumes; "
            "set it with IVPUSH_AMQP__SHARD or [amqp] shard",
        ),
        ({"IVPUSH_AMQP__SHARDS": "4", "IVPUSH_AMQP__SHARD": "4"}, "must be below amqp.shards (4): 0 to 3"),
        ({"IVPUSH_AMQP__SHARD": "1"}, "set only together with amqp.shards"),
        ({"IVPUSH_AMQP__KEY_FILE": "/k.pem"}, "env IVPUSH_AMQP__KEY_FILE: amqp.key_file: a client key needs"),
        ({"IVPUSH_AMQP__URL": "http://x/"}, "env IVPUSH_AMQP__URL: amqp.url: the URL scheme must be amqp or amqps"),
        ({"IVPUSH_METRICS_PORT": "70000"}, "env IVPUSH_METRICS_PORT: metrics.port: Input should be less than"),
        ({"IVPUSH_LOG_FORMAT": "xml"}, "logging.format: Input should be 'json' or 'text' (got 'xml')"),
        ({"IVPUSH_AMQP__PREFIX": "a b"}, "amqp.prefix: String should match pattern"),
        ({"IVPUSH_CODING__EMIT_ON": "never"}, "Input should be 'close' or 'change' (got 'never')"),
    ],
)
def test_invalid_values_and_combinations_say_what_is_allowed(environ: dict[str, str], expected: str) -> None:
    problems = problems_of(environ=environ)
    assert len(problems) == 1
    assert expected in problems[0]


def test_a_config_file_that_is_missing_or_not_toml_is_a_problem_of_the_file(tmp_path: Path) -> None:
    assert problems_of(environ={"IVPUSH_CONFIG": str(tmp_path / "none.toml")}) == [
        f"env IVPUSH_CONFIG: config: cannot read {tmp_path / 'none.toml'}: No such file or directory"
    ]
    broken = write(tmp_path / "broken.toml", "[amqp\n")
    assert problems_of(config_path=broken, environ={})[0].startswith(f"{broken}: config: not valid TOML: ")
    scalar = write(tmp_path / "scalar.toml", "amqp = 3\n")
    assert problems_of(config_path=scalar, environ={}) == [f"{scalar}: amqp: must be a table [amqp], not a value"]


def test_log_formats_are_the_ones_the_logging_module_offers() -> None:
    assert typing.get_args(LoggingSection.model_fields["format"].annotation) == LOG_FORMATS


# --- secrets never shown -------------------------------------------------------------------


def test_a_secret_never_appears_in_problems_views_or_reprs(tmp_path: Path) -> None:
    bad = {"IVPUSH_AMQP_URL": f"http://ivpush:{SECRET}@rabbit/", "IVPUSH_STATE": f"mysql://u:{SECRET}@db/"}
    with pytest.raises(SettingsError) as raised:
        load(environ=bad)
    assert SECRET not in str(raised.value)
    config = write(tmp_path / "c.toml", f"[amqp]\nurl = {{ nested = '{SECRET}' }}\n")
    assert not any(SECRET in problem for problem in problems_of(config_path=config, environ={}))
    settings = load(environ={"IVPUSH_AMQP_URL": URL, "IVPUSH_STATE": f"postgresql://u:{SECRET}@db/x"})
    shown = settings.redacted()
    assert shown["amqp.url"] == "amqps://ivpush:***@rabbit.example.org:5671/billing"
    for text in (repr(settings), str(shown), repr(settings.amqp_settings()), settings.amqp_settings().redacted()):
        assert SECRET not in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("amqp://u:pw@h/v", "amqp://u:***@h/v"),
        ("amqp://h/v", "amqp://h/v"),
        (
            "postgresql://db/x?user=u&password=pw&sslmode=require",
            "postgresql://db/x?user=u&password=***&sslmode=require",
        ),
        ("postgresql://:pw@db/x", "postgresql://:***@db/x"),
        ("/var/lib/ivpush/state.db", "/var/lib/ivpush/state.db"),
        ("amqp://u:pw@[bad/", "***"),
    ],
)
def test_redact_url_masks_passwords_wherever_a_url_carries_them(value: str, shown: str) -> None:
    assert redact_url(value) == shown


# --- the documentation's key table -----------------------------------------------------------


def test_the_documented_key_table_is_the_models() -> None:
    document = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert document.count(START) == document.count(END) == 1
    assert replace_table(document) == document, "run: python -m connector.config.doc docs/configuration.md"
    table = key_table()
    for key in keys().values():
        assert all(f"`{name}`" in table for name in key.env + key.file_env)
