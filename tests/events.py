"""Reading TensorBoard event files back (a plain TFRecord reader over tensorboardX's protos)."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path


def read_events(folder: str | Path) -> list:
    """Every ``Event`` record in the event files under ``folder``."""
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(Path(folder).rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos + 12 <= len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            record = data[pos + 12 : pos + 12 + length]
            pos += 12 + length + 4
            event = event_pb2.Event()
            event.ParseFromString(record)
            events.append(event)
    return events


def read_scalars(folder: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value), ...]`` of every scalar summary under ``folder``."""
    scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for event in read_events(folder):
        for value in event.summary.value:
            if value.HasField("simple_value"):
                scalars[value.tag].append((event.step, value.simple_value))
    return dict(scalars)


def read_image_tags(folder: str | Path) -> set[str]:
    """Tags of the image summaries under ``folder``."""
    return {
        value.tag
        for event in read_events(folder)
        for value in event.summary.value
        if value.HasField("image")
    }
