"""amqps: the server certificate chain and host name are verified (local node's private CA)."""

import pytest
from broker import LocalBroker, delete_topology, fresh_topology
from ci import skip_unless_ci

from connector.bus.base import Outgoing
from connector.bus.config import load_settings
from connector.bus.errors import BusUnavailable
from connector.bus.rabbitmq import RabbitBus

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls(rabbit: LocalBroker) -> tuple[str, str]:
    written = rabbit.written_env()
    if "IVPUSH_LOCAL_AMQPS_URL" not in written:  # .ci/run installs openssl: under CI this fails
        skip_unless_ci("the local node has no amqps listener (openssl missing when it started)")
    return written["IVPUSH_LOCAL_AMQPS_URL"], written["IVPUSH_LOCAL_CA_FILE"]


def test_amqps_with_the_right_ca_connects_and_publishes_with_confirms(
    rabbit: LocalBroker, tls: tuple[str, str]
) -> None:
    url, ca_file = tls
    settings = load_settings(None, {"IVPUSH_AMQP_URL": url, "IVPUSH_AMQP_CA_FILE": ca_file})
    topology = fresh_topology("tls")
    bus = RabbitBus(settings, connect_timeout=10)
    try:
        bus.declare(topology)
        assert bus.publish([Outgoing(topology.input_exchange, "k", b"x", "m1")], 10).complete
    finally:
        bus.close()
    delete_topology(rabbit, topology)


def test_amqps_refuses_a_server_it_cannot_verify(tls: tuple[str, str]) -> None:
    url, ca_file = tls
    with pytest.raises(BusUnavailable, match=r"CERTIFICATE_VERIFY_FAILED"):  # private CA: not trusted
        RabbitBus(load_settings(None, {"IVPUSH_AMQP_URL": url}), connect_timeout=10)
    wrong_name = {
        "IVPUSH_AMQP_URL": url,
        "IVPUSH_AMQP_CA_FILE": ca_file,
        "IVPUSH_AMQP_SERVER_HOSTNAME": "rabbit.example",
    }
    with pytest.raises(BusUnavailable, match=r"CERTIFICATE_VERIFY_FAILED"):  # it names localhost
        RabbitBus(load_settings(None, wrong_name), connect_timeout=10)
