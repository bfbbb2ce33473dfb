"""The test servers are real: log in and move mail with the standard library."""

from __future__ import annotations

import imaplib
import poplib
import re
import shutil
import smtplib
import subprocess
import time

import pytest

from tests.mailserver import DovecotServer, MailUser, SmtpServer, TestCertificate
from tests.mailserver.dovecot import DOVECOT, make_message
from tests.mailserver.smtp import smtp_send

# Settings only one generation of Dovecot knows (2.4 renamed these).
ONLY_23 = {"mail_location", "disable_plaintext_auth", "ssl_cert", "ssl_key", "args"}
ONLY_24 = {
    "dovecot_config_version",
    "dovecot_storage_version",
    "mail_driver",
    "mail_path",
    "auth_allow_cleartext",
    "ssl_server_cert_file",
    "passwd_file_path",
}


def test_dovecot_config_written_for_the_running_version(
    dovecot: DovecotServer,
) -> None:
    installed = subprocess.run(
        [DOVECOT, "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert installed.split()[0] == dovecot.version
    log = (dovecot.directory / "dovecot.log").read_text()
    assert f"Dovecot v{dovecot.version} " in log
    config = (dovecot.directory / "dovecot.conf").read_text()
    names = set(re.findall(r"^\s*(\w+)\s*=", config, re.MULTILINE))
    if dovecot.version_info >= (2, 4):
        assert config.lstrip().startswith(
            f"dovecot_config_version = {dovecot.version}\n"
        )
        assert names >= ONLY_24
        assert not names & ONLY_23
        # No one-letter variables (%u, %08Xu) left: 2.4 only knows %{name}.
        assert not re.search(r"%[0-9A-Za-z]", config)
    else:
        assert names >= ONLY_23
        assert not names & ONLY_24
        assert "%{" not in config
    # Dovecot warns on stderr about obsolete or unknown settings.
    doveconf = shutil.which("doveconf") or "/usr/bin/doveconf"
    checked = subprocess.run(
        [doveconf, "-n", "-c", str(dovecot.directory / "dovecot.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0
    assert checked.stderr == ""


def test_imaps_login(
    dovecot: DovecotServer, mail_user: MailUser, mail_cert: TestCertificate
) -> None:
    client = imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=mail_cert.client_context()
    )
    assert client.login(mail_user.username, mail_user.password)[0] == "OK"
    assert "IDLE" in client.capabilities
    client.logout()


def test_imap_starttls_login(
    dovecot: DovecotServer, mail_user: MailUser, mail_cert: TestCertificate
) -> None:
    client = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    assert "STARTTLS" in client.capabilities
    client.starttls(mail_cert.client_context())
    assert client.login(mail_user.username, mail_user.password)[0] == "OK"
    client.logout()


def test_imap_wrong_password_refused(
    dovecot: DovecotServer, mail_user: MailUser, mail_cert: TestCertificate
) -> None:
    client = imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=mail_cert.client_context()
    )
    with pytest.raises(imaplib.IMAP4.error):
        client.login(mail_user.username, "wrong")
    client.shutdown()


def test_pop3s_and_pop3_stls(
    dovecot: DovecotServer, mail_user: MailUser, mail_cert: TestCertificate
) -> None:
    dovecot.deliver(mail_user, make_message("pop me"))
    pop = poplib.POP3_SSL(
        dovecot.host, dovecot.pop3s_port, context=mail_cert.client_context()
    )
    pop.user(mail_user.username)
    pop.pass_(mail_user.password)
    assert pop.stat()[0] == 1
    pop.quit()
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port)
    assert "STLS" in pop.capa()
    pop.stls(mail_cert.client_context())
    pop.user(mail_user.username)
    pop.pass_(mail_user.password)
    assert len(pop.uidl()[1]) == 1
    pop.quit()


def test_server_without_tls_offers_no_starttls(
    dovecot_without_tls: DovecotServer,
) -> None:
    client = imaplib.IMAP4(dovecot_without_tls.host, dovecot_without_tls.imap_port)
    assert "STARTTLS" not in client.capabilities
    client.logout()
    pop = poplib.POP3(dovecot_without_tls.host, dovecot_without_tls.pop3_port)
    assert "STLS" not in pop.capa()
    pop.quit()


def test_lmtp_delivery_seen_over_imap(
    dovecot: DovecotServer, mail_user: MailUser, mail_cert: TestCertificate
) -> None:
    dovecot.deliver(mail_user, [make_message(f"n{i}") for i in range(3)])
    client = imaplib.IMAP4_SSL(
        dovecot.host, dovecot.imaps_port, ssl_context=mail_cert.client_context()
    )
    client.login(mail_user.username, mail_user.password)
    status, data = client.select("INBOX", readonly=True)
    assert status == "OK"
    assert data == [b"3"]
    _, fetched = client.fetch("1:3", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects = sorted(
        part[1].decode().strip() for part in fetched if isinstance(part, tuple)
    )
    assert subjects == ["Subject: n0", "Subject: n1", "Subject: n2"]
    client.logout()


@pytest.mark.parametrize("mode", ["starttls", "ssl", "plain"])
def test_smtp_each_mode_relays_to_mailbox(
    smtp_server: SmtpServer, dovecot: DovecotServer, mail_user: MailUser, mode: str
) -> None:
    smtp_send(
        smtp_server,
        mode,
        mail_user.address,
        mail_user.password,
        make_message(f"via {mode}"),
        mail_user.address,
    )
    received = smtp_server.received_by(mail_user.address)
    assert [m.parsed()["Subject"] for m in received] == [f"via {mode}"]
    assert received[0].login == mail_user.address
    deadline = time.monotonic() + 5
    while dovecot.message_count(mail_user) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dovecot.message_count(mail_user) == 1


def test_smtp_submission_requires_starttls_before_auth(
    smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    with smtplib.SMTP(
        smtp_server.host,
        smtp_server.starttls_port,
        local_hostname="localhost",
        timeout=10,
    ) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")


def test_smtp_wrong_password(smtp_server: SmtpServer, mail_user: MailUser) -> None:
    with pytest.raises(smtplib.SMTPAuthenticationError):
        smtp_send(
            smtp_server,
            "ssl",
            mail_user.address,
            "nope",
            make_message(),
            mail_user.address,
        )


def test_dovecot_restart_keeps_mail(own_dovecot: DovecotServer) -> None:
    user = own_dovecot.add_user()
    own_dovecot.deliver(user, make_message("before"))
    own_dovecot.restart()
    assert own_dovecot.running
    own_dovecot.deliver(user, make_message("after"))
    assert own_dovecot.message_count(user) == 2
