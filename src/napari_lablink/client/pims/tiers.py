"""The tiers of a PIMS image that can be read exactly, and how they are cut into chunks.

PIMS resamples a window of any tier whose size is not the full size divided by one integer
factor, and a resampled window comes back as an 8-bit rendering; so only such exact tiers become
levels of the lazy image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CHUNK_TARGET", "MAX_CHUNK", "Tier", "exact_tiers"]

#: Chunks are whole multiples of the tier's tile, at least this many pixels on a side when the
#: tile is smaller: a 256 px tile per request spends more time in HTTP than in pixels.
CHUNK_TARGET = 512
#: The largest chunk side, whatever the file's tiles.
MAX_CHUNK = 4096


@dataclass(frozen=True)
class Tier:
    """One tier of the image's SPATIAL pyramid that PIMS serves without resampling."""

    level: int
    width: int
    height: int
    tile_width: int
    tile_height: int

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> Tier:
        return cls(
            level=int(raw["level"]),
            width=int(raw["width"]),
            height=int(raw["height"]),
            tile_width=int(raw.get("tile_width") or raw["width"]),
            tile_height=int(raw.get("tile_height") or raw["height"]),
        )

    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Chunk sizes along y and x: tile multiples of about :data:`CHUNK_TARGET` pixels."""
        return _split(self.height, _step(self.tile_height)), _split(
            self.width, _step(self.tile_width)
        )


def _step(tile: int) -> int:
    """Whole tiles up to CHUNK_TARGET; a file's "tile" can be a whole strip or image, so steps
    stay at most MAX_CHUNK, well inside PIMS's 10000 px output limit."""
    return min(tile * max(1, CHUNK_TARGET // tile), MAX_CHUNK)


def _split(size: int, step: int) -> tuple[int, ...]:
    return tuple(min(step, size - start) for start in range(0, size, step))


def exact_tiers(tiers: list[dict[str, Any]]) -> list[Tier]:
    """The tiers whose size is the full size divided by one integer factor on both axes.

    PIMS resamples windows of any other tier (into 8-bit data), so those are dropped.
    """
    if not tiers:
        return []
    ordered = sorted(tiers, key=lambda t: int(t["level"]))
    width, height = int(ordered[0]["width"]), int(ordered[0]["height"])
    exact = []
    for raw in ordered:
        w, h = int(raw["width"]), int(raw["height"])
        if w and h and width % w == 0 and height % h == 0 and width // w == height // h:
            exact.append(Tier.parse(raw))
    return exact
