"""The load generator of the HTTP benchmark, run as its own process:
``python -m tests.bench.http_load URL RATE SECONDS [HEADER=VALUE ...]``.

Open loop: request *i* is sent at ``start + i / RATE`` whatever the answers before it (a slow
server does not slow the load down), over a keep-alive connection pool. Each latency runs from
the moment the request was due (so a request queued behind a slow one counts its wait: no
coordinated omission) to the last byte of the answer. Prints one JSON line: latencies in
seconds, errors, and the rate achieved.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


async def load(url: str, rate: float, seconds: float, headers: dict[str, str]) -> dict:
    count = int(rate * seconds)
    latencies: list[float] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await (await session.get(url, headers=headers)).read()  # warm: connection, first answer

        async def one(due: float) -> None:
            try:
                async with session.get(url, headers=headers) as answer:
                    await answer.read()
                    if answer.status >= 500 and answer.status != 503:
                        errors.append(f"HTTP {answer.status}")
            except (aiohttp.ClientError, TimeoutError) as error:
                errors.append(type(error).__name__)
                return
            latencies.append(time.perf_counter() - due)

        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"latencies": latencies, "errors": errors, "rate": count / elapsed, "sent": count}


def main() -> int:
    url, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    headers = dict(pair.split("=", 1) for pair in sys.argv[4:])
    print(json.dumps(asyncio.run(load(url, rate, seconds, headers))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
