"""The pipeline's asks: after its batches, the web asks for the export at most once a
second (the export job decides whether one is due)."""

from __future__ import annotations

import time


def test_a_web_process_asks_for_an_export_at_most_once_a_second(monkeypatch):
    """Each batch asks; only the first ask in EXPORT_ASK_SECONDS queues the export job."""
    from server.ingest import pipeline

    asked = []
    monkeypatch.setattr(pipeline.queue, "ask", lambda func: asked.append(time.monotonic()))
    monkeypatch.setitem(pipeline._export_asked, "at", float("-inf"))
    monkeypatch.setattr(pipeline, "EXPORT_ASK_SECONDS", 0.3)
    for _ in range(50):
        pipeline.ask_for_export()
    assert len(asked) == 1
    time.sleep(0.35)
    pipeline.ask_for_export()
    pipeline.ask_for_export()
    assert len(asked) == 2 and asked[1] - asked[0] >= 0.3
