"""Admission before work: one door that every request using the model passes, with a known cost.

A request states up front what it will cost in each budget (images for the forward pass, output
pixels for the decoder and the PNG encoder) and holds that much until its answer is made. What
does not fit now is refused at once with 503 + Retry-After (Triton's `max_queue_size` idea), so
work waiting for the single model thread, and memory held by renders, never grows without bound.
Costs that could never fit are the caller's to refuse with a 4xx before asking.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from app.errors import Overloaded


class Admission:
    """Named budgets (for example `images` and `pixels`) and what is held of each right now.

    Used only from the event loop: reserving and releasing are plain arithmetic between awaits.
    """

    def __init__(self, on_refused: Callable[[str], None] = lambda budget: None, **capacity: int) -> None:
        self.capacity = dict(capacity)
        self.held = dict.fromkeys(capacity, 0)
        self.on_refused = on_refused  # told the budget that refused, e.g. to count it

    @asynccontextmanager
    async def admit(self, **cost: int) -> AsyncIterator[None]:
        """Holds `cost` for the duration of the block, or raises `Overloaded` holding nothing."""
        for budget, amount in cost.items():
            if self.held[budget] + amount > self.capacity[budget]:
                self.on_refused(budget)
                raise Overloaded(
                    f"the server is busy ({self.held[budget]} of {self.capacity[budget]} {budget} in use, "
                    f"this request needs {amount}); retry shortly",
                    {"budget": budget, "in_use": self.held[budget], "capacity": self.capacity[budget]},
                )
        for budget, amount in cost.items():
            self.held[budget] += amount
        try:
            yield
        finally:
            for budget, amount in cost.items():
                self.held[budget] -= amount
