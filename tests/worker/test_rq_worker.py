"""The RQ worker `python -m worker` runs stops without waiting on its command channel."""

from __future__ import annotations

import threading
import time

from rq import Queue

from worker.rq_worker import Worker


def stop_listening(worker_class, redis_url: str) -> float:
    """Seconds `unsubscribe` took (at most 15), with the race of RQ's stop made certain:
    the listening thread reads UNSUBSCRIBE's reply before its running flag comes down."""
    from redis import Redis

    redis = Redis.from_url(redis_url)
    worker = worker_class([Queue("stop-test", connection=redis)], connection=redis)
    worker.subscribe()
    deadline = time.monotonic() + 10
    while not worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert worker.pubsub.subscribed
    send = worker.pubsub.unsubscribe

    def unsubscribe_then_pause(*args, **kwargs):
        sent = send(*args, **kwargs)
        time.sleep(0.5)  # a busy machine: the listening thread takes the reply meanwhile
        return sent

    worker.pubsub.unsubscribe = unsubscribe_then_pause
    started = time.monotonic()
    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
    stopping.start()
    stopping.join(15)
    took = time.monotonic() - started
    if stopping.is_alive():  # let the thread end: its wait is at most 60 s
        worker.pubsub_thread._running.clear()
    return took


def test_the_worker_stops_listening_at_once(redis_url):
    """RQ's own SimpleWorker, in the same race, took the full 15 s here (and up to 60)."""
    assert stop_listening(Worker, redis_url) < 3
