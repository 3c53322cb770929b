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


class _Guarded:
    """Connects to the address the guard checked, while TLS still verifies the host name."""

    allow_private = False

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
