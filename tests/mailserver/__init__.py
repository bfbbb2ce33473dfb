"""Real mail servers for tests and for ``scripts/develop``.

Dovecot (IMAP, IMAPS, POP3, POP3S, LMTP) runs from a generated configuration in a
temporary directory, and aiosmtpd provides SMTP in three modes. Cyrus IMAP
(``cyrus``) and Postfix submission (``postfix``) run the same way from Debian
packages ``scripts/setup`` unpacked (``unpacked``). ``oauth`` is a local OAuth2
authorization server; Dovecot and aiosmtpd can check tokens against it. Everything binds 127.0.0.1 on
free ports and is torn down by ``stop()``.
"""

from .certs import TestCertificate, make_certificate
from .dovecot import DovecotServer, MailUser
from .oauth import OAuthServer
from .smtp import ReceivedMessage, SmtpServer

__all__ = [
    "DovecotServer",
    "MailUser",
    "OAuthServer",
    "ReceivedMessage",
    "SmtpServer",
    "TestCertificate",
    "make_certificate",
]
