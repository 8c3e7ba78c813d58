"""Dollar cost from token counts, for agent CLIs that report tokens but no dollars (Codex, Gemini,
and Aider with a model its own table lacks). Prices live in one data file, `data/prices.json`."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel

from orchestrator.models import Tokens

PER = 1_000_000
# Dated snapshots and "-latest" aliases cost what their base model costs; any other suffix
# (`gpt-5-codex` vs `gpt-5`) is a different model and must not borrow a price.
_SNAPSHOT = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest|preview(-\d{2}-\d{4})?|\d{3})$")


class ModelPrice(BaseModel):
    """USD per million tokens."""

    input: float
    cached_input: float | None = None
    cache_write: float | None = None
    output: float


class PriceTable(BaseModel):
    unit: str
    as_of: str
    source: str
    note: str = ""
    models: dict[str, ModelPrice]


@lru_cache(maxsize=1)
def price_table() -> PriceTable:
    """The bundled table (read once; it ships inside the package)."""
    text = resources.files("orchestrator").joinpath("data", "prices.json").read_text(encoding="utf-8")
    return PriceTable.model_validate(json.loads(text))


def model_price(model: str | None) -> ModelPrice | None:
    """The price for a model name as CLIs print it (`openai/gpt-4o`, `models/gemini-2.5-pro`,
    `claude-sonnet-4-5-20250929`), or None when the table does not know it."""
    if not model:
        return None
    name = model.strip().lower().rsplit("/", 1)[-1]
    models = price_table().models
    while name:
        if name in models:
            return models[name]
        stripped = _SNAPSHOT.sub("", name)
        if stripped == name:
            return None
        name = stripped
    return None


def cost_usd(model: str | None, tokens: Tokens) -> float | None:
    """USD for these tokens at list price; None for an unknown model (never a guess).

    `tokens.input` is uncached input only, as every adapter normalises it; cache reads and writes
    fall back to the input price where a vendor has no separate one."""
    price = model_price(model)
    if price is None:
        return None
    cached = price.cached_input if price.cached_input is not None else price.input
    write = price.cache_write if price.cache_write is not None else price.input
    total = (
        tokens.input * price.input
        + tokens.cache_read * cached
        + tokens.cache_creation * write
        + tokens.output * price.output
    )
    return total / PER
