"""The engine recipes of deploy/engines/ against what can be checked without the engines.

Well-formed XML; the Mirth / Open Integration Engine channels' hosts, ports, MLLP framing and
timeouts against the recipe's ``ivpush.toml`` (loaded by the connector's own settings loader) and
the connector's defaults; the IRIS production's exchange, routing key, queue, broker address and
message properties against the connector's topology defaults, its publisher contract
(``docs/publishing.md``) and the recipe's README. None of it imports the files into an engine.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from connector.bus.inputs import HL7_TYPES
from connector.bus.topology import Topology
from connector.config import Settings, load
from connector.forward.mllp import END as FORWARD_END
from connector.forward.mllp import START as FORWARD_START
from connector.ingress.mllp import CR, END, START
from connector.ingress.settings import DEFAULT_ROUTING_KEY, parse_address

REPO = Path(__file__).resolve().parents[2]
ENGINES = REPO / "deploy" / "engines"
MIRTH = ENGINES / "mirth"
IRIS = ENGINES / "iris"
DEFAULTS = Topology()


def mirth_settings() -> Settings:
    return load(MIRTH / "ivpush.toml", environ={})


def channel(name: str) -> ET.Element:
    return ET.parse(MIRTH / name).getroot()


def text(element: ET.Element, path: str) -> str:
    found = element.find(path)
    assert found is not None, path
    return found.text or ""


def framing(properties: ET.Element) -> tuple[bytes, bytes]:
    mode = properties.find("transmissionModeProperties")
    assert mode is not None and text(mode, "pluginPointName") == "MLLP"
    return bytes.fromhex(text(mode, "startOfMessageBytes")), bytes.fromhex(text(mode, "endOfMessageBytes"))


def scripts(element: ET.Element) -> str:
    return "\n".join(node.text or "" for node in element.iter("script"))


@pytest.mark.parametrize(
    "path",
    [MIRTH / "ivpush-ras-to-listen.xml", MIRTH / "ivpush-dft-from-forward.xml", IRIS / "IVPush.Production.xml"],
    ids=lambda p: p.name,
)
def test_every_export_is_well_formed_xml(path: Path) -> None:
    assert ET.parse(path).getroot().tag in ("channel", "Export")


def test_the_ras_channel_sends_to_the_address_ivpush_listen_binds_with_its_framing() -> None:
    settings = mirth_settings()
    assert settings.listen.mllp is not None
    listen = parse_address(settings.listen.mllp)
    root = channel("ivpush-ras-to-listen.xml")
    (sender,) = root.findall("destinationConnectors/connector")
    assert text(sender, "transportName") == "TCP Sender"
    properties = sender.find("properties")
    assert properties is not None
    assert properties.get("class") == "com.mirth.connect.connectors.tcp.TcpDispatcherProperties"
    assert (text(properties, "remoteAddress"), int(text(properties, "remotePort"))) == (listen.host, listen.port)
    assert framing(properties) == (START, END + CR)
    # an ACK is awaited longer than ivpush waits for the broker, so Mirth hears the AE, not a timeout
    assert int(text(properties, "responseTimeout")) > settings.listen.confirm_timeout * 1000
    assert text(properties, "ignoreResponse") == "false"
    queue = properties.find("destinationConnectorProperties")
    assert queue is not None
    assert text(queue, "queueEnabled") == "true" and text(queue, "threadCount") == "1"  # retried, in order
    response = scripts(sender.find("responseTransformer"))  # type: ignore[arg-type]
    assert "MSA.1" in response and "responseStatus = QUEUED" in response and "responseStatus = ERROR" in response
    assert "'AR'" in response and "'AA'" in response
    rule = scripts(sender.find("filter"))  # type: ignore[arg-type]
    assert "'RAS'" in rule and all(f"'{event}'" in rule for event in ("A03", "A04", "A06", "A07", "A08"))


def test_the_dft_channel_listens_where_ivpush_forward_sends_with_its_framing() -> None:
    settings = mirth_settings()
    root = channel("ivpush-dft-from-forward.xml")
    source = root.find("sourceConnector")
    assert source is not None and text(source, "transportName") == "TCP Listener"
    properties = source.find("properties")
    assert properties is not None
    assert properties.get("class") == "com.mirth.connect.connectors.tcp.TcpReceiverProperties"
    address = (
        text(properties, "listenerConnectorProperties/host"),
        int(text(properties, "listenerConnectorProperties/port")),
    )
    assert address == (settings.forward.host, settings.forward.port)
    assert framing(properties) == (FORWARD_START, FORWARD_END)
    assert text(properties, "sourceConnectorProperties/responseVariable").startswith("Auto-generate")
    assert "'DFT'" in scripts(source.find("filter")) and "'P03'" in scripts(source.find("filter"))  # type: ignore[arg-type]
    assert text(source, "transformer/inboundDataType") == "HL7V2"


def test_the_two_channels_and_ivpush_use_distinct_ports_and_the_readmes_name_them() -> None:
    settings = mirth_settings()
    assert settings.listen.mllp is not None
    listen = parse_address(settings.listen.mllp)
    source = channel("ivpush-ras-to-listen.xml").find("sourceConnector/properties/listenerConnectorProperties")
    assert source is not None
    ports = {listen.port, settings.forward.port, int(text(source, "port"))}
    assert len(ports) == 3
    readme = (MIRTH / "README.md").read_text(encoding="utf-8")
    overview = (ENGINES / "README.md").read_text(encoding="utf-8")
    for address in (f"{listen.host}:{listen.port}", f"{settings.forward.host}:{settings.forward.port}"):
        assert address in readme and address in overview
    assert "not imported into a running" in readme.lower().replace("**", "")


def production() -> tuple[ET.Element, ET.Element]:
    export = ET.parse(IRIS / "IVPush.Production.xml").getroot()
    (definition,) = [c for c in export.findall("Class") if c.get("name") == "IVPush.Production"]
    data = text(definition, "XData/Data")
    return export, ET.fromstring(data)


def items(prod: ET.Element) -> dict[str, tuple[str, dict[str, str]]]:
    return {
        item.get("Name", ""): (
            item.get("ClassName", ""),
            {s.get("Name", ""): s.text or "" for s in item.findall("Setting")},
        )
        for item in prod.findall("Item")
    }


def test_the_iris_production_uses_the_builtin_rabbitmq_hosts_on_ivpushs_names() -> None:
    export, prod = production()
    assert prod.tag == "Production" and prod.get("Name") == "IVPush.Production"
    found = items(prod)
    operation = next(settings for cls, settings in found.values() if cls == "EnsLib.RabbitMQ.Operation")
    service = next(settings for cls, settings in found.values() if cls == "EnsLib.RabbitMQ.Service")
    assert service["QueueName"] == DEFAULTS.output_queue("dft")
    assert not service.get("ExchangeName") and not service.get("BindingKeys")  # ivpush declares the queue
    _, process = found["IVPush.HL7ToRabbitMQ"]
    assert process["Exchange"] == DEFAULTS.input_exchange and process["RoutingKey"] == DEFAULT_ROUTING_KEY
    assert found[process["Target"]][0] == "EnsLib.RabbitMQ.Operation"
    targets = {
        name for _, settings in found.values() for name in settings.get("TargetConfigNames", "").split(",") if name
    }
    assert targets <= set(found)
    broker = {key: operation[key] for key in ("MQHost", "MQPort", "MQVirtualHost")}
    assert broker == {key: service[key] for key in broker}
    readme = (IRIS / "README.md").read_text(encoding="utf-8")
    (url,) = re.findall(r"IVPUSH_AMQP_URL=(amqp://\S+)", readme)
    parts = urlsplit(url)
    assert (parts.hostname, str(parts.port), unquote(parts.path[1:])) == (
        broker["MQHost"],
        broker["MQPort"],
        broker["MQVirtualHost"],
    )
    classes = {c.get("name") for c in export.findall("Class")}
    assert {"IVPush.HL7ToRabbitMQ", "IVPush.RabbitMQToHL7"} <= classes


def test_the_iris_message_follows_the_publisher_contract() -> None:
    export, _ = production()
    (process,) = [c for c in export.findall("Class") if c.get("name") == "IVPush.HL7ToRabbitMQ"]
    code = text(process, "Method/Implementation")
    (content_type,) = re.findall(r'contentType = "([^"]+)"', code)
    assert content_type in HL7_TYPES
    assert "deliveryMode = 2" in code
    assert re.search(r"SHAHash\(256, tBytes\)", code) and "1, 32)" in code  # the message id ivpush publish sends
    defaults = dict(
        re.findall(
            r'<Property name="(\w+)">\s*<Type>%String</Type>\s*<InitialExpression>"([^"]+)"',
            ET.tostring(process, encoding="unicode"),
        )
    )
    assert defaults == {"Exchange": DEFAULTS.input_exchange, "RoutingKey": DEFAULT_ROUTING_KEY}
