"""Channel webhooks under a sustained rate: the real `leadflow serve` on SQLite over loopback, each service's webhook
posted to at a fixed rate (an open loop: a request is sent on schedule whether or not the earlier ones were
answered, and its latency counts from when it was due, so a stall shows in full), beside the plain lead intake
(`POST /api/v1/leads` with an intake key) at the same rate, on the same server, in the same run.

Every message is a new client's (a new chat, sender or number), so each one makes a lead through the whole intake
(cleaning, dedupe, routing, the deadline) as well as its message and channel event: the heavier case. Each is
signed as its service signs it. The answer comes after the commit, so an answered message is a stored one.

    .venv/bin/python -m bench.channels [--rate 200] [--seconds 30] [--warmup 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import console, machine_info, percentile, print_table
from bench.http import LEADFLOW, RULES, Server, _env, intake_key

TELEGRAM_SECRET = "bench-telegram-secret-0123456789"
META_SECRET = "bench-meta-app-secret-0123456789"
VIBER_TOKEN = "bench-viber-token-0123456789"
CALLS_SECRET = "bench-calls-secret-0123456789"
CHANNEL_ENV = {
    "LEADFLOW_CHANNELS__TELEGRAM_BOT_TOKEN": "123:bench-bot-token",
    "LEADFLOW_CHANNELS__TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
    "LEADFLOW_CHANNELS__TELEGRAM_API_BASE": "http://127.0.0.1:9",  # replies are not part of this bench
    "LEADFLOW_CHANNELS__META_APP_SECRET": META_SECRET,
    "LEADFLOW_CHANNELS__META_VERIFY_TOKEN": "bench-verify-token",
    "LEADFLOW_CHANNELS__WHATSAPP_ACCESS_TOKEN": "bench-whatsapp-token",
    "LEADFLOW_CHANNELS__WHATSAPP_PHONE_NUMBER_ID": "100200300",
    "LEADFLOW_CHANNELS__GRAPH_API_BASE": "http://127.0.0.1:9",
    "LEADFLOW_CHANNELS__VIBER_AUTH_TOKEN": VIBER_TOKEN,
    "LEADFLOW_CHANNELS__VIBER_API_BASE": "http://127.0.0.1:9",
    "LEADFLOW_CHANNELS__CALLS_SECRET": CALLS_SECRET,
}


@dataclass(frozen=True)
class Target:
    """One kind of request: where it goes, and the i-th request's body and headers."""

    name: str
    path: str
    build: Callable[[int], tuple[bytes, dict[str, str]]]


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def intake(key: str) -> Target:
    def build(i: int) -> tuple[bytes, dict[str, str]]:
        body = {"name": f"Client {i}", "phone": f"+38067{i % 10_000_000:07d}", "message": "Потрібен кредит"}
        return _json(body), {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    return Target("plain intake (POST /api/v1/leads, intake key)", "/api/v1/leads", build)


def telegram(i: int) -> tuple[bytes, dict[str, str]]:
    chat = 10_000_000 + i
    update = {"update_id": i, "message": {"message_id": 1, "date": int(time.time()), "text": "Потрібен кредит",
                                          "from": {"id": chat, "is_bot": False, "first_name": f"Client {i}"},
                                          "chat": {"id": chat, "type": "private"}}}  # fmt: skip
    return _json(update), {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}


def whatsapp(i: int) -> tuple[bytes, dict[str, str]]:
    wa_id = f"38050{i % 10_000_000:07d}"
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "380441234567",
                                                           "phone_number_id": "100200300"},
             "contacts": [{"profile": {"name": f"Client {i}"}, "wa_id": wa_id}],
             "messages": [{"from": wa_id, "id": f"wamid.bench{i}", "timestamp": str(int(time.time())), "type": "text",
                           "text": {"body": "Потрібен кредит"}}]}  # fmt: skip
    body = _json({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
                                                                                         "value": value}]}]})  # fmt: skip
    signature = "sha256=" + hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature}


def viber(i: int) -> tuple[bytes, dict[str, str]]:
    event = {"event": "message", "timestamp": int(time.time() * 1000), "message_token": 5_000_000_000 + i,
             "sender": {"id": f"bench-viber-{i}==", "name": f"Client {i}", "language": "uk", "country": "UA"},
             "message": {"type": "text", "text": "Потрібен кредит"}}  # fmt: skip
    body = _json(event)
    signature = hmac.new(VIBER_TOKEN.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Viber-Content-Signature": signature}


def generic_call(i: int) -> tuple[bytes, dict[str, str]]:
    call = {"call_id": f"bench-{i}", "caller": f"+38063{i % 10_000_000:07d}", "called": "+380441112233",
            "status": "missed", "duration": 0}  # fmt: skip
    return _json(call), {"Content-Type": "application/json", "X-Leadflow-Token": CALLS_SECRET}


WEBHOOKS = [
    Target("Telegram webhook", "/api/v1/channels/telegram/webhook", telegram),
    Target("WhatsApp webhook (HMAC-SHA256)", "/api/v1/channels/whatsapp/webhook", whatsapp),
    Target("Viber webhook (HMAC-SHA256)", "/api/v1/channels/viber/webhook", viber),
    Target("call-tracking webhook (generic)", "/api/v1/channels/calls/generic", generic_call),
]


async def drive(url: str, target: Target, rate: float, seconds: float, offset: int) -> dict[str, Any]:
    """Send `rate` requests a second for `seconds`, each at its due time; latencies count from the due time."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30, trust_env=False) as client:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            body, headers = target.build(offset + i)
            try:
                answer = await client.post(target.path, content=body, headers=headers)
            except httpx.HTTPError:
                errors += 1
                return
            latencies.append((time.perf_counter() - due) * 1000)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        start = time.perf_counter() + 0.05
        total = int(rate * seconds)
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"sent": total, "seconds": elapsed, "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies, default=float("nan")), "over_50ms": sum(1 for v in latencies if v > 50),
            "statuses": statuses, "errors": errors,
            "load": round(os.getloadavg()[0], 2)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.channels", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    p.add_argument("--rate", type=float, default=200, help="requests a second, sustained")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--warmup", type=float, default=3)
    p.add_argument("--rounds", type=int, default=1, help="times to run every target, interleaved")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="leadflow-channels-") as tmp:
        root = Path(tmp)
        (root / "rules.yaml").write_text(RULES + "  channels: {telegram: 5m, whatsapp: 5m, viber: 5m}\n")
        env = _env(LEADFLOW_DATABASE_URL=f"sqlite:///{root / 'leadflow.db'}", LEADFLOW_RULES=str(root / "rules.yaml"),
                   **CHANNEL_ENV)  # fmt: skip
        key = intake_key(env, root)
        repo = Path(__file__).resolve().parents[1]
        with Server("leadflow serve", [LEADFLOW, "serve", "--port", "{port}"], env, repo, root) as server:
            url = f"http://127.0.0.1:{server.port}"
            targets = [intake(key), *WEBHOOKS]
            offset = 0
            step = int(args.rate * max(args.seconds, args.warmup)) + 1000  # distinct clients in every run
            for target in targets:  # warm-up, and leave out what this leadflow does not serve
                offset += step
                warm = asyncio.run(drive(url, target, args.rate, args.warmup, offset))
                if set(warm["statuses"]) - {200, 201}:
                    console.print(f"  {target.name}: answered {warm['statuses']} in the warm-up, left out")
                    target_ok = False
                else:
                    target_ok = True
                if not target_ok:
                    targets = [t for t in targets if t is not target]
            for _ in range(args.rounds):
                for target in targets:
                    offset += step
                    figures = asyncio.run(drive(url, target, args.rate, args.seconds, offset))
                    rows.append({"target": target.name, **figures})
                    console.print(f"  {target.name}: p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                                  f"max {figures['max_ms']:.0f} ms, {figures['statuses']}, errors "
                                  f"{figures['errors']}; load {figures['load']}")  # fmt: skip
    # Each row beside the plain intake of its own round (the machine's stalls come and go between rounds).
    base_p99 = float("nan")
    for row in rows:
        if row["target"].startswith("plain intake"):
            base_p99 = row["p99_ms"]
        row["p99_of_intake"] = row["p99_ms"] / base_p99
    print_table(
        f"Webhooks at {args.rate:.0f} requests/s for {args.seconds:.0f} s each, leadflow serve on SQLite, new clients",
        ["target", "sent", "p50 ms", "p99 ms", "max ms", "over 50 ms", "p99 / its round's intake", "answers", "errors",
         "load"],
        [[r["target"], str(r["sent"]), f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['max_ms']:.0f}",
          str(r["over_50ms"]), f"{r['p99_of_intake']:.2f}×", ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())),
          str(r["errors"]), str(r["load"])] for r in rows],
    )  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
