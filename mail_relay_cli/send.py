"""``mail-relay send``: one message through the account's SMTP server."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from custom_components.mail_relay.mail.compose import OutgoingAttachment, OutgoingMail
from custom_components.mail_relay.mail.errors import MailError
from custom_components.mail_relay.mail.smtp import SmtpSender

from .account import resolve_servers, warn_insecure
from .errors import Exit, explain, usage_error
from .oauth import add_credentials
from .output import say
from .passwords import PasswordSource
from .wire import tracer


def _read_file(path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as err:
        raise usage_error(f"cannot read {path}: {err.strerror}") from None


async def cmd_send(args: argparse.Namespace) -> int:
    """Send one message through the account's SMTP server."""
    if not (args.to or args.cc or args.bcc):
        raise usage_error("give at least one recipient with --to, --cc or --bcc")
    text = args.text
    if args.text_file:
        data = (
            await asyncio.to_thread(sys.stdin.buffer.read)
            if args.text_file == "-"
            else await asyncio.to_thread(_read_file, args.text_file)
        )
        text = data.decode("utf-8", "replace")
    html = None
    if args.html:
        html = (await asyncio.to_thread(_read_file, args.html)).decode(
            "utf-8", "replace"
        )
    attachments = []
    for path in args.attach or []:
        content = await asyncio.to_thread(_read_file, path)
        attachments.append(OutgoingAttachment(Path(path).name, content))
    account = await resolve_servers(
        args, args.address, need_incoming=False, need_smtp=True
    )
    assert account.smtp is not None
    if account.detect_seconds is not None:
        say(f"Settings from {account.found_in()}")
    warn_insecure(account)
    if account.smtp.username:
        account = await add_credentials(
            replace(account, incoming=None), args, PasswordSource(args.password_fd)
        )
    assert account.smtp is not None
    mail = OutgoingMail(
        sender=args.address,
        to=args.to or [],
        cc=args.cc or [],
        bcc=args.bcc or [],
        subject=args.subject,
        text=text,
        html=html,
        sender_name=args.sender_name,
        reply_to=args.reply_to or [],
        attachments=attachments,
    )
    sender = SmtpSender(account.smtp, timeout=args.timeout, trace=tracer())
    try:
        result = await sender.send(mail)
    except MailError as err:
        raise explain(err, "send", account.smtp, smtp=True) from err
    finally:
        await sender.close()
    print(f"Sent to {', '.join(result.accepted) or 'nobody'}: {result.reply}".rstrip())
    for rcpt, (code, reply) in result.refused.items():
        print(f"Refused {rcpt}: {code} {reply}")
    return Exit.REFUSED if result.refused else Exit.OK
