"""Input sides of the form step·k+offset (PSANet's 8k+1 and 16k+1): their text, and why a side is not one."""
from __future__ import annotations


def side_form(step: int, offset: int = 1) -> str:
    """Sides of step·k+offset as text: "16k+1", "16k"."""
    return f"{step}k+{offset}" if offset else f"{step}k"


def side_problem(side: int, step: int, offset: int = 1, low: int = 1, high: int | None = None,
                 what: str = "side") -> str | None:
    """None for a side of step·k+offset in low..high; else why not, naming the nearest sides that are."""

    def fits(s: int) -> bool:
        return s >= low and (high is None or s <= high)

    if fits(side) and (side - offset) % step == 0:
        return None
    below = side - (side - offset) % step
    nearest = [s for s in (below, below + step) if fits(s)]
    if not nearest:  # outside low..high: the valid side at that end
        nearest = [low + (offset - low) % step] if side < low or high is None else [high - (high - offset) % step]
    bounds = f" in {low}..{high}" if high is not None else ""
    return f"{what} {side} is not {side_form(step, offset)}{bounds}: nearest {' and '.join(map(str, nearest))}"
