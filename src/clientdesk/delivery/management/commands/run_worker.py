"""Run a delivery worker until SIGTERM or Ctrl-C."""

import logging
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from clientdesk.core.bounded import whole_number_argument
from clientdesk.delivery.worker import Worker, install_signal_handlers


class Command(BaseCommand):
    help = "Deliver queued messages (webhook, email), retrying on the schedule. Run one or more."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=whole_number_argument(minimum=1, maximum=64),
            default=16,
            help="Attempts in flight at once (1-64).",
        )
        parser.add_argument(
            "--once", action="store_true", help="Attempt what is due now, then exit."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        concurrency = options["concurrency"]
        worker = Worker(concurrency=concurrency)
        install_signal_handlers(worker)
        self.stdout.write(f"Delivery worker {worker.name} running (concurrency {concurrency}).")
        if options["once"]:
            done = worker.run_once()
            self.stdout.write(f"Attempted {len(done)} deliveries.")
            return
        if worker.run():
            # Attempts still running were released to other workers; their threads would hold
            # the exit (Python waits for a thread pool's threads) until their own timeouts.
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
