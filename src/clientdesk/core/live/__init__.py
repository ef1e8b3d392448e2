"""Live events: rows written in the transaction of a change, announced after commit, and sent to
the event streams (Server-Sent Events) that every web process holds open.

- `recording`: writing the log (`LiveEvent`) in the transaction of the change, in id order;
  pruning it.
- `log`: the reads the hub and the streams make from the event loop.
- `hub`: the announcements, and this process's one listener and fan-out.
- `stream`: the body of an SSE response.
- `http`: how both stream views open a stream (`messaging/streams.py`, `portal/streams.py`).
"""
