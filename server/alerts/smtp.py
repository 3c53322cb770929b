"""Sending mail through SMTP_URL: STARTTLS or implicit TLS, to a host the SSRF guard allows."""

from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage

# Reading SMTP_URL is settings parsing, done by server.config (which checks it at start);
# the names stay importable from here for the code that sends mail.
from server.config import SCHEMES, SmtpSettings, parse_smtp_url  # noqa: F401
from server.net import urlguard
from server.net.http import MAX_ANSWER_BYTES


def guarded_address(host: str, port: int, allow_private: bool, timeout: float) -> str:
    """The address to connect to: the host's, once the SSRF guard has checked every one."""
    try:
        addresses = urlguard.resolve(host, port, timeout)
    except urlguard.ResolveError as exc:
        raise OSError(f"SMTP host: {exc}") from exc
    if not allow_private:
        for address in addresses:
            reason = urlguard.blocked_reason(address)
            if reason:
                raise urlguard.UnsafeURL(
                    f"The SMTP host {host} resolves to {address} ({reason}); alerts may only "
                    "reach public addresses (an operator can set MONITOR_ALLOW_PRIVATE=1)."
                )
    return str(addresses[0])


class _BoundedReplies:
    """The server's side of the connection, read at most MAX_ANSWER_BYTES a reply: smtplib
    keeps every line of a reply ("250-..." without end) until the socket's timeout, which
    a server that keeps talking never reaches."""

    def __init__(self, raw) -> None:
        self.raw, self.left = raw, MAX_ANSWER_BYTES

    def readline(self, limit: int = -1) -> bytes:
        if self.left <= 0:
            # smtplib closes the connection on an OSError and raises SMTPServerDisconnected
            raise OSError(f"the SMTP server's reply is longer than {MAX_ANSWER_BYTES} bytes")
        line = self.raw.readline(min(limit, self.left) if limit > 0 else self.left)
        self.left -= len(line)
        return line

    def close(self) -> None:
        self.raw.close()


class _Guarded:
    """Connects to the address the guard checked, while TLS still verifies the host name;
    reads each reply within a bound."""

    allow_private = False

    def getreply(self):
        if self.file is None and self.sock is not None:
            self.file = _BoundedReplies(self.sock.makefile("rb"))
        if isinstance(self.file, _BoundedReplies):
            self.file.left = MAX_ANSWER_BYTES
        return super().getreply()

    def _get_socket(self, host, port, timeout):
        address = guarded_address(host, port, self.allow_private, timeout or 10)
        sock = socket.create_connection((address, port), timeout, self.source_address)
        if isinstance(self, smtplib.SMTP_SSL):
            return self.context.wrap_socket(sock, server_hostname=self._host)
        return sock


class GuardedSMTP(_Guarded, smtplib.SMTP):
    pass


class GuardedSMTPS(_Guarded, smtplib.SMTP_SSL):
    pass


def send_mail(
    settings: SmtpSettings,
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    allow_private: bool,
    timeout: float = 15,
) -> None:
    """Send one plain-text message; raises (OSError, smtplib.SMTPException, UnsafeURL)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(body)
    context = ssl.create_default_context()
    if settings.scheme == "smtps":
        client = GuardedSMTPS(timeout=timeout, context=context)
    else:
        client = GuardedSMTP(timeout=timeout)
    client.allow_private = allow_private
    # connect() records the host name the certificate must match before _get_socket runs.
    client._host = settings.host
    with client:
        client.connect(settings.host, settings.port)
        if settings.scheme == "smtp":
            client.starttls(context=context)  # refused by the server: the send fails
        if settings.username:
            client.login(settings.username, settings.password or "")
        client.send_message(message)
