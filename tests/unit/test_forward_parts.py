"""``ivpush forward``'s parts: reading ACKs, and the MLLP client against real sockets (plain and TLS)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from ci import skip_unless_ci
from forward_support import dft, settings
from mllp_receiver import ERR_CODE, Receiver, ack_for

from connector.forward.ack import BadAck, control_id, parse_ack
from connector.forward.mllp import END, START, MllpClient, MllpError, client_context

# --- reading ACKs ---------------------------------------------------------------------------------


def test_control_id_is_msh_10() -> None:
    assert control_id(dft("msg-1")) == "msg-1"
    assert control_id(b"MSH#^~\\&#A#B#####M9") == ""  # other field separator, too few fields
    assert control_id(b"not hl7") == ""


@pytest.mark.parametrize("code", ["AA", "CA"])
def test_an_accepting_ack(code: str) -> None:
    ack = parse_ack(ack_for("msg-1", code), "msg-1")
    assert (ack.code, ack.control_id, ack.error_code, ack.accepted) == (code, "msg-1", "", True)


@pytest.mark.parametrize("code", ["AE", "AR", "CE", "CR"])
def test_a_refusal_keeps_only_codes(code: str) -> None:
    ack = parse_ack(ack_for("msg-1", code), "msg-1")
    assert (ack.code, ack.error_code, ack.accepted) == (code, ERR_CODE, False)
    assert "DOE" not in repr(ack)


def test_err_3_that_is_not_a_code_is_dropped() -> None:
    data = b"MSH|^~\\&|R|F|||1||ACK|1|P|2.5.1\rMSA|AE|m1\rERR|||Jane Doe, MRN 4711^x|E\r"
    assert parse_ack(data, "m1").error_code == ""


def test_the_first_msa_and_lower_case_codes_and_lf_separators() -> None:
    data = b"MSH|^~\\&|R|F|||1||ACK|1|P|2.5.1\nMSA|aa|m1\nMSA|AE|m1\n"
    assert parse_ack(data, "m1").code == "AA"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not_hl7"),
        (b"HELLO", "not_hl7"),
        (b"MSH|^~\\&|R|F|||1||ACK|1|P|2.5.1\r", "no_msa"),
        (b"MSH|^~\\&|R|F|||1||ACK|1|P|2.5.1\rMSA|OK|m1\r", "unknown_code"),
        (b"MSH|^~\\&|R|F|||1||ACK|1|P|2.5.1\rMSA|AA|m2\r", "other_message"),
        (b"MSH|^~\\&|R|F|||1||ACK|1|P|2.5.1\rMSA|AA\r", "other_message"),
    ],
)
def test_unusable_acks(data: bytes, reason: str) -> None:
    with pytest.raises(BadAck) as caught:
        parse_ack(data, "m1")
    assert caught.value.reason == reason


# --- the MLLP client ------------------------------------------------------------------------------


class OneShot:
    """A server that reads one frame and writes scripted bytes back, then waits or closes."""

    def __init__(self, reply: bytes, close: bool = False) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.reply, self.close = reply, close
        self.received = b""
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        sock, _ = self.server.accept()
        with sock, contextlib.suppress(OSError):  # the client may reset the connection
            while END not in self.received:
                self.received += sock.recv(65536)
            for index in range(0, len(self.reply), 7):  # in small pieces
                sock.sendall(self.reply[index : index + 7])
            if not self.close:
                sock.recv(1)  # until the client goes away


def test_client_frames_and_reassembles_an_answer_sent_in_pieces() -> None:
    server = OneShot(b"garbage" + START + b"first" + END + START + b"second" + END)
    client = MllpClient(settings(server.port))
    client.connect()
    client.send(b"MSH|x")
    assert client.receive(2.0) == b"first"
    assert client.receive(2.0) == b"second"
    client.close()
    assert server.received == START + b"MSH|x" + END


def test_client_times_out_and_closes() -> None:
    server = OneShot(b"")
    client = MllpClient(settings(server.port))
    client.connect()
    client.send(b"MSH|x")
    idles: list[int] = []
    with pytest.raises(MllpError) as caught:
        client.receive(0.5, idle=lambda: idles.append(1))
    assert caught.value.reason == "timeout"
    assert idles  # the broker is serviced while waiting
    assert not client.connected


def test_client_sees_the_receiver_close() -> None:
    server = OneShot(START + b"half", close=True)
    client = MllpClient(settings(server.port))
    client.connect()
    client.send(b"MSH|x")
    with pytest.raises(MllpError) as caught:
        client.receive(2.0)
    assert caught.value.reason == "closed"


def test_client_refuses_an_endless_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connector.forward.mllp.MAX_ACK_BYTES", 100)
    server = OneShot(START + b"x" * 500)
    client = MllpClient(settings(server.port))
    client.connect()
    client.send(b"MSH|x")
    with pytest.raises(MllpError) as caught:
        client.receive(2.0)
    assert caught.value.reason == "oversize"


def test_client_connect_failure_is_a_reason_not_a_traceback() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(MllpError) as caught:
        MllpClient(settings(port)).connect()
    assert caught.value.reason == "connect"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        skip_unless_ci("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder


def test_tls_receiver_verified_by_its_ca_and_name(certificate: Path) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    with Receiver(tls=server_tls) as receiver:
        good = settings(receiver.port, tls=True, ca_file=str(certificate / "cert.pem"), server_hostname="localhost")
        client = MllpClient(good, client_context(good))
        client.connect()
        client.send(dft("tls-1"))
        assert parse_ack(client.receive(2.0), "tls-1").accepted
        client.close()
        untrusted = settings(receiver.port, tls=True, server_hostname="localhost")  # the system's CAs
        with pytest.raises(MllpError, match="connect: SSLCertVerificationError"):
            MllpClient(untrusted, client_context(untrusted)).connect()
        wrong_name = settings(receiver.port, tls=True, ca_file=str(certificate / "cert.pem"), server_hostname="billing")
        with pytest.raises(MllpError, match="connect: SSLCertVerificationError"):
            MllpClient(wrong_name, client_context(wrong_name)).connect()
    assert receiver.accepted() == ["tls-1"]
