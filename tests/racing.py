"""One action run in several threads at once, as racing requests arrive."""

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def race(threads: int, act: Callable[[int], T]) -> tuple[list[T], list[Exception]]:
    """`act(n)` for n in 0..threads-1, each in its own thread, all released by one barrier; each
    thread gives its database connection back. The results and the errors, as they finished."""
    barrier = threading.Barrier(threads)
    results: list[T] = []
    errors: list[Exception] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            results.append(act(n))
        except Exception as error:  # collected for the test to assert on
            errors.append(error)
        finally:
            connection.close()

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    return results, errors
