"""Which server serves this app fastest: wrk against `/healthz` under each candidate, side by side.

Every candidate runs 2 worker processes (one per core here) against the same database, and
the candidates take turns round by round, so a busy moment on the shared machine hits all of
them rather than one. Prints requests/s per round and each one's best as a share of the best.

    DATABASE_URL=... .venv/bin/python bench/serve_bench.py [--rounds 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import json
import re

from common import VENV_BIN, free_port, served, wrk

APP_WSGI, APP_ASGI = "clientdesk.wsgi:application", "clientdesk.asgi:application"
SERVERS = {
    "granian WSGI": f"granian --interface wsgi {APP_WSGI} --workers 2 --port {{port}}",
    "gunicorn (sync)": f"gunicorn {APP_WSGI} --workers 2 --bind 127.0.0.1:{{port}}",
    "gunicorn (gthread, 8 threads)": (
        f"gunicorn {APP_WSGI} --workers 2 --worker-class gthread --threads 8 "
        "--bind 127.0.0.1:{port}"
    ),
    "granian ASGI": f"granian --interface asgi {APP_ASGI} --workers 2 --port {{port}}",
    "uvicorn uvloop+httptools": (
        f"uvicorn {APP_ASGI} --workers 2 --loop uvloop --http httptools "
        "--no-access-log --port {port}"
    ),
    "uvicorn (asyncio+h11)": (
        f"uvicorn {APP_ASGI} --workers 2 --loop asyncio --http h11 --no-access-log --port {{port}}"
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--only", action="append", help="a name from SERVERS (repeatable)")
    parser.add_argument("--out", help="write the results here (JSON)")
    args = parser.parse_args()
    names = args.only or list(SERVERS)
    results: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(1, args.rounds + 1):
        for name in names:
            port = free_port()
            command = f"{VENV_BIN}/" + SERVERS[name].format(port=port)
            url = f"http://127.0.0.1:{port}/healthz"
            with served(command, port):
                wrk(url, duration=2, connections=args.connections)
                out = wrk(url, duration=args.duration, connections=args.connections)
            rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
            results[name].append(rate)
            print(f"round {round_no}  {name:26} {rate:9.1f} req/s", flush=True)
    best = max(max(rates) for rates in results.values())
    print(f"\n{'server':26} {'best req/s':>10} {'rounds':>28} {'of fastest':>10}")
    for name, rates in sorted(results.items(), key=lambda item: -max(item[1])):
        shown = " / ".join(f"{r:.0f}" for r in rates)
        print(f"{name:26} {max(rates):10.1f} {shown:>28} {max(rates) / best:9.0%}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
