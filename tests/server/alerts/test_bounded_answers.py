"""A webhook or Slack receiver's answer is read only so far: one that answers 200 and then
streams without end (or 1.5 GiB) gets its status read, at most 64 KiB of its body, and its
connection closed, instead of filling the sender's memory until the deadline."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from server.alerts.notify import DeliveryFailed, post_json
from server.net.http import MAX_ANSWER_BYTES


class EndlessReceiver:
    """Answers every request with `status` and a body that never ends (or is huge)."""

    def __init__(self, status: int = 200, chunked: bool = True) -> None:
        self.status, self.chunked = status, chunked
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.closed_by_client = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.recv(65536)
        length = "Transfer-Encoding: chunked" if self.chunked else f"Content-Length: {3 << 29}"
        conn.sendall(f"HTTP/1.1 {self.status} OK\r\n{length}\r\n\r\n".encode())
        block = b"x" * 65536
        chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n" if self.chunked else block
        try:
            while self.sent < 3 << 29:
                conn.sendall(chunk)
                self.sent += len(block)
        except OSError:
            self.closed_by_client.set()
        finally:
            conn.close()


@pytest.mark.parametrize("chunked", [True, False], ids=["endless-chunked", "1.5-GiB"])
def test_a_huge_answer_is_cut_short_and_the_connection_closed(chunked):
    receiver = EndlessReceiver(chunked=chunked)
    started = time.monotonic()
    post_json(f"http://127.0.0.1:{receiver.port}/hook", b"{}", [], allow_private=True)
    took = time.monotonic() - started
    assert took < 3, took  # the 10 s deadline used to be all that stopped it
    assert receiver.closed_by_client.wait(5)
    # What the receiver managed to push is what the sockets' buffers held, nowhere near
    # the body: the sender read MAX_ANSWER_BYTES of it.
    assert receiver.sent < 64 * 1024 * 1024, receiver.sent
    assert MAX_ANSWER_BYTES == 64 * 1024


def test_a_refusal_with_a_huge_body_is_still_a_refusal():
    receiver = EndlessReceiver(status=500)
    with pytest.raises(DeliveryFailed, match="HTTP 500"):
        post_json(f"http://127.0.0.1:{receiver.port}/hook", b"{}", [], allow_private=True)


def test_an_smtp_server_that_never_stops_its_greeting_is_cut_short():
    """smtplib keeps every line of a reply; one of "220-..." lines without end was bounded
    only by the socket's timeout, which a server that keeps talking never reaches."""
    import smtplib

    from server.alerts.smtp import send_mail
    from server.config import SmtpSettings

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    sent = [0]
    closed = threading.Event()

    def serve():
        conn, _ = sock.accept()
        line = b"220-" + b"x" * 1000 + b"\r\n"
        try:
            while sent[0] < 3 << 29:
                conn.sendall(line)
                sent[0] += len(line)
        except OSError:
            closed.set()
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    settings = SmtpSettings("smtp", "127.0.0.1", sock.getsockname()[1], None, None)
    started = time.monotonic()
    with pytest.raises(smtplib.SMTPServerDisconnected, match="longer than 65536 bytes"):
        send_mail(settings, "a@example.com", "b@example.com", "s", "b", allow_private=True)
    assert time.monotonic() - started < 3
    assert closed.wait(5)
    assert sent[0] < 64 * 1024 * 1024, sent[0]
