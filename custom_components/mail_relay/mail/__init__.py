"""The mail core: typed asyncio clients for IMAP, POP3 and SMTP.

Nothing in this package imports Home Assistant; the integration adapts it, the
way Home Assistant's Elgato integration adapts python-elgato.
"""
