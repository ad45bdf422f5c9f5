"""What the search index costs the ingest: the same messages into two SQLite hubs' stores,
one with the index's triggers (migration 0014) and one with them dropped, in turns.

Each round ingests ``--batch`` new clients' messages (Russian and English sentences of
a few words, as clients write) through the ingest service into each database, in turn
(the order alternates), and prints messages/s of both and their ratio: the baseline is
measured in the same run, on the same machine, under the same noise.

Run as ``.venv/bin/python -m bench.search_cost [--rounds 6] [--batch 400]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from crm_core import migrate
from crm_core.clock import ManualClock
from crm_core.contracts import IdentityRef, InboundMessage
from crm_core.db import Database
from crm_core.enums import Channel, IdentityKind
from crm_core.ingest import IngestPolicy, IngestService

WORDS = [
    "здравствуйте",
    "нужна",
    "консультация",
    "по",
    "кластеру",
    "PostgreSQL",
    "на",
    "три",
    "узла",
    "сколько",
    "стоит",
    "пробный",
    "период",
    "для",
    "базы",
    "данных",
    "hello",
    "we",
    "need",
    "a",
    "managed",
    "Kafka",
    "cluster",
    "with",
    "backups",
    "and",
    "monitoring",
    "please",
    "call",
    "me",
    "back",
    "tomorrow",
    "after",
    "lunch",
]
TRIGGERS = (
    "message_words_insert",
    "message_words_update",
    "message_words_delete",
    "contact_words_insert",
    "contact_words_update",
    "contact_words_delete",
)


def _message(n: int, rng: random.Random, when: datetime) -> InboundMessage:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))
    return InboundMessage(
        channel=Channel.API,
        channel_account="bench",
        external_id=f"m{n}",
        identities=(IdentityRef(IdentityKind.EMAIL, f"client{n}@bench.test"),),
        occurred_at=when,
        display_name=f"Клиент {n}",
        text=body,
    )


async def _round(service: IngestService, messages: list[InboundMessage]) -> float:
    started = time.perf_counter()
    for message in messages:
        await service.ingest(message)
    return len(messages) / (time.perf_counter() - started)


async def _run(rounds: int, batch: int, folder: Path) -> None:
    stores: dict[str, IngestService] = {}
    databases = []
    for label in ("with index", "without"):
        url = f"sqlite:///{folder / label.replace(' ', '-')}.sqlite3"
        await asyncio.to_thread(migrate.upgrade, url)
        database = Database(url)
        databases.append(database)
        if label == "without":
            await database.write(
                lambda s: [s.execute(text(f"DROP TRIGGER {name}")) for name in TRIGGERS]
            )
        clock = ManualClock(datetime(2026, 12, 1, 9, tzinfo=UTC))
        stores[label] = IngestService(database, clock, IngestPolicy())
    rng = random.Random(20261201)
    rates: dict[str, list[float]] = {label: [] for label in stores}
    when = datetime(2026, 12, 1, 9, tzinfo=UTC)
    for n in range(rounds):
        messages = [_message(n * batch + i, rng, when) for i in range(batch)]
        order = list(stores) if n % 2 == 0 else list(reversed(stores))
        for label in order:
            rates[label].append(await _round(stores[label], messages))
        print(
            f"round {n + 1}: "
            + "  ".join(f"{label} {rates[label][-1]:6.0f} msg/s" for label in stores),
            flush=True,
        )
    with_index = statistics.median(rates["with index"])
    without = statistics.median(rates["without"])
    print(
        f"median: with the search index {with_index:.0f} msg/s, without {without:.0f} msg/s: "
        f"{with_index / without:.2f} of the rate without it"
    )
    for database in databases:
        await database.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(_run(args.rounds, args.batch, Path(folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
