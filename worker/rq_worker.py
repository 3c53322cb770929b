"""The RQ worker `python -m worker` runs: RQ's SimpleWorker, stopping promptly.

RQ listens for its commands (`rq` CLI's shutdown, kill-horse) on a pub/sub channel, read
by a thread that waits up to 60 s for each message. On stop, RQ sends UNSUBSCRIBE and
then lowers the thread's running flag and waits for it without a limit: when the thread
read UNSUBSCRIBE's reply before the flag came down, it went back to a 60 s wait, and the
stopping worker with it (about one stop in thirty here, the worker outliving `make run`
by up to a minute). Lowering the flag first means the reply always ends the last wait.
"""

from __future__ import annotations

from rq import SimpleWorker


class Worker(SimpleWorker):
    def unsubscribe(self) -> None:
        thread = getattr(self, "pubsub_thread", None)
        if thread is not None:
            try:
                thread.stop(timeout=0)  # the flag only: UNSUBSCRIBE's reply ends the read
            except TypeError:  # an older redis-py: its stop() only lowers the flag
                thread.stop()
        super().unsubscribe()
