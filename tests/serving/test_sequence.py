"""A sequence whose client went away for good (its event loop closed) is cancelled, not an error
that would fail the batch it shares with other clients' sequences."""

from __future__ import annotations

import asyncio

from modelplane.serving import Delta, GenerationRequest
from modelplane.serving._sequence import Sequence


def test_emitting_to_a_closed_client_loop_cancels_the_sequence_instead_of_raising() -> None:
    loop = asyncio.new_event_loop()
    out: asyncio.Queue[Delta | BaseException] = asyncio.Queue()
    seq = Sequence(GenerationRequest("hi", max_tokens=4), [1, 2], loop, out)
    loop.close()
    seq.emit(Delta("text"))
    assert seq.cancelled
