"""Merge the scenario results into docs/benchmarks.json, docs/benchmarks.md and charts.

python -m bench.report [results-dir] [docs-dir]
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .sysstats import machine

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = (
    "push_latency",
    "burst",
    "large_message",
    "big_mailbox",
    "smtp",
    "pop3",
    "scale",
    "blackhole",
    "multi_folder",
)
MISSING = {"status": "not available"}


def _merge(into: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of everything measured."""
    manifest = json.loads(
        (ROOT / "custom_components" / "mail_relay" / "manifest.json").read_text()
    )
    out = {
        "mail_relay": f"{manifest['version']} ({_run('git', '-C', str(ROOT), 'rev-parse', '--short', 'HEAD')})",
        "python": platform.python_version(),
        "dovecot": _run("dovecot", "--version") or "unknown",
    }
    for dist in (
        "homeassistant",
        "aioimaplib",
        "aiosmtplib",
        "aiosmtpd",
        "pytest-homeassistant-custom-component",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def collect(results: Path) -> dict[str, Any]:
    """Merge every fragment; scenarios that did not run say so."""
    data: dict[str, Any] = {}
    for path in sorted(results.glob("*.json")):
        _merge(data, json.loads(path.read_text()))
    for name in SCENARIOS:
        scenario = data.setdefault(name, {})
        for side in ("mail_relay", "peer"):
            scenario.setdefault(side, dict(MISSING) | {"note": "scenario did not run"})
    return {
        "machine": machine()
        | {"python_implementation": platform.python_implementation()},
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
    } | {name: data[name] for name in SCENARIOS}


# -- markdown -------------------------------------------------------------


def multi_folder(s: dict[str, Any]) -> list[str]:
    """Several folders of one account: three ways of watching them, side by side."""
    folders = s.get("folders") or []
    sides = (
        ("mail_relay", "Mail Relay, one entry"),
        ("mail_relay_per_folder", "Mail Relay, an entry per folder"),
        ("peer", "core `imap`, an entry per folder"),
    )
    out = [
        "## Several folders of one account",
        "",
        f"{len(folders)} folders ({', '.join(folders)}) of one mailbox, watched for "
        f"{_fmt(s.get('idle_window_s'), 's')} with nothing delivered, then "
        f"{s.get('messages_per_folder')} messages per folder stored one at a time "
        "(APPEND, unread, 0.3-1 s apart). Latency: from the server's OK to the "
        "event. Mail Relay's one entry keeps the first folder in IDLE and has the "
        "others pushed by NOTIFY (Dovecot offers it; after each read of another folder it looks again 2 s later); core `imap` needs an entry, a "
        "login and a connection per folder.",
        "",
        "| | " + " | ".join(title for _, title in sides) + " |",
        "|---|" + "---:|" * len(sides),
    ]
    rows = [
        ("connections", "connections", ""),
        ("bytes per idle minute", "idle_bytes_per_minute", "B"),
        ("events / missed / duplicates", None, ""),
    ] + [
        (f"latency {q}, {f}", f"latency_by_folder.{f}.{q}_ms", "ms")
        for f in folders
        for q in ("p50", "max")
    ]
    for title, path, unit in rows:
        cells = []
        for key, _ in sides:
            side = s.get(key, MISSING)
            if _status(side):
                cells.append(_status(side) or "")
            elif path is None:
                cells.append(
                    f"{side.get('events')} / {side.get('missed')} / {side.get('duplicates')}"
                )
            else:
                cells.append(_fmt(_get(side, path), unit))
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def _get(side: dict[str, Any], path: str) -> Any:
    value: Any = side
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "bytes" and isinstance(value, int | float):
        if value >= 1024 * 1024:
            return f"{value / 1024 / 1024:.1f} MiB"
        if value >= 1024:
            return f"{value / 1024:.1f} KiB"
        return f"{value} B"
    if isinstance(value, float):
        return f"{value:g} {unit}".strip()
    return f"{value} {unit}".strip()


def _ratio(ours: Any, peer: Any) -> str:
    if not isinstance(ours, int | float) or not isinstance(peer, int | float):
        return "—"
    if isinstance(ours, bool) or isinstance(peer, bool):
        return "—"
    if peer == 0:
        return "—" if ours == 0 else "∞"
    return f"{ours / peer:.2f}×"


def _status(side: dict[str, Any]) -> str | None:
    if side.get("status") == "not available":
        return "not available"
    if side.get("status") == "error":
        return f"error: {side.get('error', '')}"
    return None


def table(
    scenario: dict[str, Any], rows: list[tuple[str, str, str]], peer_title: str
) -> list[str]:
    """Markdown rows: metric, Mail Relay, peer, ratio (Mail Relay ÷ peer)."""
    ours, peer = scenario["mail_relay"], scenario["peer"]
    lines = [
        f"| | Mail Relay | {peer_title} | ratio (Mail Relay ÷ peer) |",
        "|---|---:|---:|---:|",
    ]
    for title, path, unit in rows:
        a = _status(ours) or _fmt(_get(ours, path), unit)
        b = _status(peer) or _fmt(_get(peer, path), unit)
        lines.append(
            f"| {title} | {a} | {b} | {_ratio(_get(ours, path), _get(peer, path))} |"
        )
    return lines


def markdown(data: dict[str, Any], charts: list[str]) -> str:
    """The human-readable report."""
    m, v = data["machine"], data["versions"]
    out = [
        "# Benchmarks",
        "",
        "Mail Relay beside Home Assistant's own `imap` and `smtp` integrations, on the same",
        "real servers (Dovecot, aiosmtpd), in one run of `scripts/bench`, inside a real Home",
        "Assistant (pytest-homeassistant-custom-component's `hass`). Every byte is counted by a",
        "TCP proxy (its own process) that both sides connect through. The ratio column is",
        "always *Mail Relay ÷ peer*: below 1 is better for times and bytes, above 1 for",
        "throughput. These machines are noisy: compare the columns, not absolute times.",
        "",
        f"- **Date**: {data['date']}",
        f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, {m['kernel']}"
        f" (load average when the report was written: {', '.join(str(x) for x in m['load_average'])})",
        "- **Versions**: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "",
        "How each side is configured: Mail Relay verifies the server certificate (the test",
        "CA is trusted through `SSL_CERT_FILE`); core `imap` checks certificates against",
        "certifi only, which cannot trust a private CA, so it runs with `verify_ssl: false`",
        "(implicit TLS, its only mode); core `smtp` uses STARTTLS with `verify_ssl: false`",
        "for the same reason. The asyncio debug mode that the test plugin turns on is off,",
        "and logging is at WARNING, for both sides.",
        "",
    ]
    peer_imap = "core `imap`"
    out += targets(data)

    s = data["push_latency"]
    out += [
        "## Push latency",
        "",
        f"{s.get('messages', 50)} single messages delivered through LMTP at random intervals "
        "(0.3-1.5 s); time from LMTP accepting the message to the event on Home Assistant's "
        "bus (`mail_relay_new_mail`, core: `imap_content`). All clients watch the same "
        "mailbox at once, so each delivery is timed for every client. The floor is a bare "
        "IDLE client (raw asyncio + ssl, no FETCH) in the same process: Dovecot itself "
        "waits about 0.5 s before it tells IDLE clients. The floor never leaves IDLE, so a "
        "message delivered while a notification is already pending reaches it early; a "
        "real client leaves IDLE to fetch and profits from that less often: compare the "
        "p95, as the target does.",
        "",
    ]
    out += table(
        s,
        [
            ("p50", "p50_ms", "ms"),
            ("p95", "p95_ms", "ms"),
            ("max", "max_ms", "ms"),
            ("messages with an event", "distinct", ""),
            ("messages without an event", "missed", ""),
            ("duplicate events", "duplicates", ""),
            ("bytes read", "bytes_read", "bytes"),
        ],
        peer_imap,
    )
    floor = s.get("floor", {})
    paired = s.get("paired", {})
    if paired.get("messages"):
        pf = paired.get("floor", {})
        out += [
            "",
            f"On the {paired['messages']} messages that every client reported (the percentiles "
            "above leave out each side's missed messages, so they cover different sets):",
            "",
            "| | floor | Mail Relay | core `imap` |",
            "|---|---:|---:|---:|",
        ]
        for key, title in (("p50_ms", "p50"), ("p95_ms", "p95"), ("max_ms", "max")):
            out.append(
                f"| {title} | {_fmt(pf.get(key), 'ms')} | "
                f"{_fmt(_get(paired, 'mail_relay.' + key), 'ms')} | "
                f"{_fmt(_get(paired, 'peer.' + key), 'ms')} |"
            )
        if paired.get("mail_relay_minus_peer_median_ms") is not None:
            out += [
                "",
                "Median per-message difference, Mail Relay − core: "
                f"{_fmt(paired['mail_relay_minus_peer_median_ms'], 'ms')}.",
            ]
    out += [
        "",
        f"Floor (bare IDLE client): p50 {_fmt(floor.get('p50_ms'), 'ms')}, "
        f"p95 {_fmt(floor.get('p95_ms'), 'ms')}, max {_fmt(floor.get('max_ms'), 'ms')}.",
        "",
    ]

    s = data["burst"]
    out += [
        "## Burst",
        "",
        f"{s.get('messages', 200)} messages delivered in one LMTP session as fast as Dovecot "
        f"takes them ({_fmt(s.get('delivery_s'), 's')}); both integrations watch the same mailbox.",
        "",
    ]
    out += table(
        s,
        [
            ("distinct messages with an event", "distinct", ""),
            ("messages without an event", "missed", ""),
            ("duplicate events", "duplicates", ""),
            ("last delivery → last event", "last_delivery_to_last_event_ms", "ms"),
            ("bytes read", "bytes_read", "bytes"),
        ],
        peer_imap,
    )
    bf = s.get("floor", {})
    out += [
        "",
        f"Floor: the bare IDLE client saw the last EXISTS "
        f"{_fmt(bf.get('last_exists_after_last_delivery_ms'), 'ms')} after the last delivery.",
        "",
    ]

    s = data["large_message"]
    out += [
        "## Large message",
        "",
        f"One message of {_fmt(_get(s['peer'], 'message_bytes') or _get(s['mail_relay'], 'message_bytes'), 'bytes')} "
        "(text and two binary attachments); each side alone on its own mailbox. "
        "Bytes are what the client read from the socket (TLS included).",
        "",
    ]
    out += table(
        s,
        [
            ("bytes read before the event", "bytes_read_before_event", "bytes"),
            ("bytes read in total", "bytes_read_total", "bytes"),
            ("event latency", "latency_ms", "ms"),
            ("event has the subject", "event_has_subject", ""),
        ],
        peer_imap,
    )
    out.append("")

    s = data["big_mailbox"]
    out += [
        "## Big mailbox start",
        "",
        f"Setting up an account whose INBOX already holds {s.get('messages_in_folder', 10000)} "
        "messages (Dovecot's index built beforehand, so neither side pays for it). "
        "Ready = the last byte of the start-up exchange (the client then sits in IDLE).",
        "",
    ]
    out += table(
        s,
        [
            ("setup call", "setup_call_s", "s"),
            ("setup → ready", "ready_s", "s"),
            ("bytes read", "bytes_read", "bytes"),
            ("events fired (old mail)", "events_fired", ""),
        ],
        peer_imap,
    )
    out.append("")

    s = data.get("loop_latency")
    if s:
        out += [
            "## Event-loop holds",
            "",
            "The longest time any one callback held Home Assistant's event loop, each side "
            f"alone on its own mailbox: a burst of {s.get('messages', 200)} messages, then "
            "the hostile corpus of `tests/reliability/corpus.py` (8-bit headers, 1,000 "
            "nested multiparts, a 1 MB subject, 100 KB names, 5,000 "
            "Authentication-Results, 100,000 encoded words, 20,000 parts). Every "
            "callback is timed (`bench/looptime.py`); while one side runs alone, the "
            "library work both share (aioimaplib) counts as that side's.",
            "",
        ]
        out += table(
            s,
            [
                ("burst: longest hold", "burst.longest_hold_ms", "ms"),
                ("burst: holds over 50 ms", "burst.holds_over_50_ms", ""),
                ("hostile mail: longest hold", "hostile.longest_hold_ms", "ms"),
                ("hostile mail: holds over 50 ms", "hostile.holds_over_50_ms", ""),
                ("hostile mail: events", "hostile.events", ""),
            ],
            peer_imap,
        )
        out.append("")

    s = data["smtp"]
    out += [
        "## SMTP",
        "",
        f"{s.get('notifications', 200)} notifications, one after the other (each call waits for "
        "the previous), to aiosmtpd with STARTTLS + AUTH running in its own process; two "
        "rounds per side in A-B-B-A order. Mail Relay: `notify.send_message` on its notify "
        "entity; core: the `smtp` notify service (YAML).",
        "",
    ]
    smtp_rows = [
        ("messages/s", "messages_per_s", ""),
        ("accepted by the server", "accepted", ""),
        ("errors raised", "errors_raised", ""),
        ("TCP connections", "tcp_connections", ""),
        ("round trips per message", "round_trips_per_message", ""),
        ("bytes sent", "bytes_sent", "bytes"),
    ]
    out += table(s, smtp_rows, "core `smtp`")
    out.append("")
    if link := s.get("link"):
        out += [
            f"### SMTP over a {link.get('round_trip_ms', 20)} ms link",
            "",
            f"The same, {link.get('notifications', 40)} notifications, with the proxy "
            "delaying each direction by half that round trip (and a connection's "
            "greeting by two round trips, as SYN, SYN-ACK and ACK would). On loopback a "
            "round trip costs less than Home Assistant's own work per notification; over "
            "a link between a home and a provider the round trips set the pace. Mail "
            "Relay's kept connection closes after 5 s idle, so it reconnects once "
            "between its rounds here.",
            "",
        ]
        out += table(link, smtp_rows, "core `smtp`")
        out.append("")

    s = data["pop3"]
    out += [
        "## POP3",
        "",
        f"A maildrop of {s.get('maildrop', 5000)} messages. No Home Assistant integration speaks "
        "POP3; the peer is a plain `poplib` script doing what a naive client does on every "
        "poll (LIST, then RETR of every message). Mail Relay polls through Home Assistant "
        "(its scheduler fires the poll); poll time is from the trigger to the end of the "
        f"session (median of {s.get('repeat', 3)} for the empty poll).",
        "",
    ]
    out += table(
        s,
        [
            ("poll, nothing new: time", "poll_nothing_new.seconds_median", "s"),
            ("poll, nothing new: bytes read", "poll_nothing_new.bytes_read", "bytes"),
            ("poll, 10 new: time", "poll_10_new.seconds_median", "s"),
            ("poll, 10 new: bytes read", "poll_10_new.bytes_read", "bytes"),
            ("poll, 10 new: events", "poll_10_new.events", ""),
        ],
        "naive `poplib`",
    )
    out.append("")

    s = data["scale"]
    out += [
        "## Scale",
        "",
        f"{_get(s['peer'], 'accounts') or 50} IMAP accounts in one Home Assistant, idling for "
        f"{_get(s['peer'], 'idle_seconds') or 60} s, then one message to each. Each side "
        "runs in a fresh process; CPU, memory and sockets are this process's own (read "
        "from /proc; Dovecot and the proxy are other processes). Memory per account is "
        "the growth from the first account to the 50th, divided by 49.",
        "",
    ]
    out += table(
        s,
        [
            ("CPU while idle (% of one core)", "cpu_percent_of_one_core", "%"),
            ("CPU seconds in the idle period", "cpu_seconds_idle", "s"),
            ("RSS growth (50 accounts)", "rss_growth_bytes", "bytes"),
            ("RSS per account", "rss_per_account_bytes", "bytes"),
            ("open sockets", "open_sockets", ""),
            ("bytes on the wire while idle", "bytes_while_idle", "bytes"),
            ("accounts with their event", "accounts_with_event", ""),
            ("event latency p50", "p50_ms", "ms"),
            ("event latency p95", "p95_ms", "ms"),
            ("event latency max", "max_ms", "ms"),
        ],
        peer_imap,
    )
    out.append("")

    s = data["blackhole"]
    out += [
        "## A link that dies silently",
        "",
        "While the account idles, a proxy drops every byte both ways and keeps the "
        "connection open (a dead Wi-Fi link, a NAT that forgot the connection). Mail "
        "Relay with its default settings, through Home Assistant; one message is "
        "delivered during the outage. The peer is not run (its IDLE is renewed every "
        "29 minutes).",
        "",
    ]
    out += table(
        s,
        [
            ("time until the connection shows lost", "detect_s", "s"),
            ("promised bound (IDLE renewal + timeout)", "bound_s", "s"),
            (
                "mail of the outage reported, after the link is back",
                "reported_after_link_back_s",
                "s",
            ),
            ("copies of that mail reported", "copies", ""),
        ],
        "core `imap`",
    )
    out.append("")

    out += multi_folder(data["multi_folder"])

    if charts:
        out += ["## Charts", ""]
        out += [f"![{c}]({c})" for c in charts]
        out.append("")
    out += [
        "Raw figures (every sample): [`benchmarks.json`](benchmarks.json). Reproduce with",
        "`scripts/bench` (about 8 minutes on 2 cores).",
        "",
    ]
    return "\n".join(out)


def targets(data: dict[str, Any]) -> list[str]:
    """The goals of the benchmark issue, checked against this run."""

    def num(scenario: str, side: str, path: str) -> float | None:
        value = _get(data[scenario].get(side, {}), path)
        return (
            value
            if isinstance(value, int | float) and not isinstance(value, bool)
            else None
        )

    rows: list[tuple[str, str, bool | None]] = []
    # Paired: the same messages for all three (core misses some).
    ours_p95 = _get(data["push_latency"], "paired.mail_relay.p95_ms")
    floor_p95 = _get(data["push_latency"], "paired.floor.p95_ms")
    core_p95 = _get(data["push_latency"], "paired.peer.p95_ms")
    if ours_p95 is None or floor_p95 is None or core_p95 is None:
        rows.append(
            (
                "Push latency p95 within 25 ms of the floor, not worse than core",
                "—",
                None,
            )
        )
    else:
        rows.append(
            (
                "Push latency p95 within 25 ms of the floor, not worse than core",
                f"{ours_p95:g} ms vs floor {floor_p95:g} ms, core {core_p95:g} ms "
                "(same messages)",
                ours_p95 <= floor_p95 + 25 and ours_p95 <= core_p95,
            )
        )
    distinct = num("burst", "mail_relay", "distinct")
    dups = num("burst", "mail_relay", "duplicates")
    total = data["burst"].get("messages", 200)
    rows.append(
        (
            f"Burst: {total}/{total} events, 0 duplicates",
            "—" if distinct is None else f"{distinct:g}/{total}, {dups:g} duplicates",
            None if distinct is None else distinct == total and dups == 0,
        )
    )
    read = num("large_message", "mail_relay", "bytes_read_before_event")
    rows.append(
        (
            "Large message: under 64 KB read",
            "—" if read is None else _fmt(read, "bytes"),
            None if read is None else read < 64 * 1024,
        )
    )
    ours_rate = num("smtp", "mail_relay", "messages_per_s")
    core_rate = num("smtp", "peer", "messages_per_s")
    rows.append(
        (
            "SMTP: at least 5× core smtp messages/s",
            "—"
            if ours_rate is None or not core_rate
            else f"{ours_rate / core_rate:.2f}×",
            None if ours_rate is None or not core_rate else ours_rate >= 5 * core_rate,
        )
    )
    if "loop_latency" in data:
        holds = [
            num("loop_latency", "mail_relay", f"{phase}.longest_hold_ms")
            for phase in ("burst", "hostile")
        ]
        measured = [h for h in holds if h is not None]
        rows.append(
            (
                "Event loop: no callback holds it 50 ms (burst of 200, hostile mail)",
                "—" if not measured else f"{max(measured):g} ms at most",
                None if len(measured) < 2 else max(measured) < 50,
            )
        )
    cpu = num("scale", "mail_relay", "cpu_percent_of_one_core")
    rss = num("scale", "mail_relay", "rss_per_account_bytes")
    rows.append(
        (
            "Scale: 50 idle accounts under 1% of one core, under 150 KB RSS each",
            "—"
            if cpu is None or rss is None
            else f"{cpu:g}% of a core, {_fmt(rss, 'bytes')} per account",
            None if cpu is None or rss is None else cpu < 1 and rss < 150 * 1024,
        )
    )
    detect = num("blackhole", "mail_relay", "detect_s")
    copies = num("blackhole", "mail_relay", "copies")
    rows.append(
        (
            "Dead link: noticed within 120 s with the defaults, its mail reported once",
            "—"
            if detect is None or copies is None
            else f"{detect:g} s; copies: {copies:g}",
            None if detect is None or copies is None else detect < 120 and copies == 1,
        )
    )
    lines = ["## Targets", "", "| target | this run | met |", "|---|---|---|"]
    for title, value, met in rows:
        verdict = "not measured" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {title} | {value} | {verdict} |")
    return [*lines, ""]


# -- charts ---------------------------------------------------------------


def charts(data: dict[str, Any], docs: Path) -> list[str]:
    """Draw the PNG charts; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[str] = []
    colors = {"mail_relay": "#1f77b4", "peer": "#d62728", "floor": "#7f7f7f"}
    names = {
        "mail_relay": "Mail Relay",
        "peer": "core imap",
        "floor": "bare IDLE floor",
    }

    # Latency distribution (empirical CDF).
    s = data["push_latency"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("floor", "mail_relay", "peer"):
        samples = sorted(_get(s.get(key, {}), "samples_ms") or [])
        if samples:
            ys = [(i + 1) / len(samples) for i in range(len(samples))]
            ax.step(
                samples,
                ys,
                where="post",
                label=f"{names[key]} (n={len(samples)})",
                color=colors[key],
            )
    ax.set_xlabel("delivery accepted → event (ms)")
    ax.set_ylabel("fraction of messages")
    ax.set_title("Push latency, 50 messages")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(docs / "bench_latency.png", dpi=110)
    plt.close(fig)
    made.append("bench_latency.png")

    # Burst completeness over time.
    s = data["burst"]
    total = s.get("messages", 200)
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in ("mail_relay", "peer"):
        offsets = _get(s.get(key, {}), "event_offsets_s")
        if offsets is None:
            continue
        shift = s.get("delivery_s") or 0.0
        times = [shift + t for t in offsets]
        xs = [0.0, *times]
        ys = list(range(len(times) + 1))
        if times:
            xs.append(max(times[-1], shift) + 1)
            ys.append(len(times))
        ax.step(
            xs,
            ys,
            where="post",
            color=colors[key],
            label=f"{names[key]}: {len(offsets)}/{total}",
        )
    if s.get("delivery_s") is not None:
        ax.axvline(s["delivery_s"], color="#7f7f7f", linestyle=":", linewidth=1)
        ax.text(s["delivery_s"], total * 0.5, " last delivery", color="#7f7f7f")
    ax.axhline(total, color="#999999", linestyle="--", linewidth=1)
    ax.set_xlabel("seconds since the first delivery started")
    ax.set_ylabel("distinct messages with an event")
    ax.set_title(f"Burst of {total} messages")
    ax.grid(alpha=0.3)
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(docs / "bench_burst.png", dpi=110)
    plt.close(fig)
    made.append("bench_burst.png")

    # SMTP throughput.
    s = data["smtp"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    labels, rates, bar_colors = [], [], []
    for key, title in (("mail_relay", "Mail Relay"), ("peer", "core smtp")):
        done = _get(s.get(key, {}), "completion_s")
        if done:
            ax1.plot(done, range(1, len(done) + 1), color=colors[key], label=title)
            labels.append(title)
            rates.append(_get(s[key], "messages_per_s") or 0)
            bar_colors.append(colors[key])
    ax1.set_xlabel("seconds of sending")
    ax1.set_ylabel("notifications sent")
    ax1.set_title("Cumulative notifications")
    ax1.grid(alpha=0.3)
    if labels:
        ax1.legend()
    ax2.bar(labels, rates, color=bar_colors)
    for i, rate in enumerate(rates):
        ax2.text(i, rate, f"{rate:g}/s", ha="center", va="bottom")
    ax2.set_ylabel("messages/s")
    ax2.set_title("Throughput (sequential)")
    fig.tight_layout()
    fig.savefig(docs / "bench_smtp.png", dpi=110)
    plt.close(fig)
    made.append("bench_smtp.png")
    return made


def main() -> None:
    """Merge, write JSON, charts and markdown."""
    results = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "bench-results"
    )
    docs = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    data = collect(results)
    (docs / "benchmarks.json").write_text(json.dumps(data, indent=1) + "\n")
    made = charts(data, docs)
    (docs / "benchmarks.md").write_text(markdown(data, made))
    print(
        f"wrote {docs / 'benchmarks.json'}, {docs / 'benchmarks.md'}, {', '.join(made)}"
    )


if __name__ == "__main__":
    main()
