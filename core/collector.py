"""The cyclic garbage collector paused while a job streams a large file.

Reading a file chunk by chunk allocates millions of short-lived objects (cells, lists, frames);
each allocation burst makes Python's cyclic collector traverse every live object again, which
measured about a fifth of the CPU time of validate + split (cProfile on 100,000 rows, issue 25).
Those objects are freed by reference counting as each chunk is dropped, so memory stays bounded
by the chunk with the collector paused; whatever cycles the step made (Great Expectations
builds some) are collected once, when it ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic collector for the block, then collect once; nested use is harmless.

    Reference counting still frees every object outside a cycle at once. On leaving (normally
    or by an exception) the collector is enabled again if it was, and one collection runs.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            gc.collect()
