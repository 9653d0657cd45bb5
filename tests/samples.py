"""Activation records used across the tests: a latent that fires on cats."""

from __future__ import annotations

from typing import Any

# The seed's documented request, byte for byte.
SEED_EXPLAIN_BODY = (
    '{"activations":[{"tokens":["The"," cat"," sat"," on"," the"," mat"],'
    '"values":[0.0,0.8,0.0,0.0,0.0,0.0]},{"tokens":["I"," like"," felines"],'
    '"values":[0,0,0.9]}],"openrouter_key":"YOUR_OPENROUTER_KEY","model":"openai/gpt-4o-mini"}'
)

_ACTIVATING = [
    (["The", " cat", " sat", " on", " the", " mat"], 1),
    (["My", " cat", " sleeps", " all", " day"], 1),
    (["A", " black", " cat", " crossed", " the", " road"], 2),
    (["She", " fed", " the", " cat", " at", " noon"], 3),
    (["Our", " cat", " hates", " rain"], 1),
    (["The", " cat", " chased", " a", " mouse", " quickly"], 1),
    (["Every", " cat", " loves", " warm", " sun"], 1),
]
_NON_ACTIVATING = [
    ["Stock", " prices", " fell", " sharply", " today"],
    ["He", " drove", " to", " work", " early"],
    ["The", " bank", " raised", " interest", " rates"],
    ["We", " planted", " tomatoes", " in", " spring"],
    ["A", " train", " left", " the", " station"],
    ["The", " meeting", " ran", " very", " long"],
    ["Rain", " fell", " on", " the", " roof"],
]


def cat_records() -> list[dict[str, Any]]:
    """7 activating records (peak on " cat") and 7 non-activating ones, interleaved."""
    records: list[dict[str, Any]] = []
    for (tokens, peak), other in zip(_ACTIVATING, _NON_ACTIVATING, strict=True):
        values = [0.0] * len(tokens)
        values[peak] = 0.9
        records.append({"tokens": tokens, "values": values})
        records.append({"tokens": other, "values": [0.0] * len(other)})
    return records


RIGHT_EXPLANATION = "the word cat"
WRONG_EXPLANATION = "stock market finance"


_MORE_ACTIVATING = [
    (["I", " adopted", " a", " cat", " last", " year"], 3),
    (["The", " cat", " purred", " softly"], 1),
    (["A", " cat", " napped", " in", " the", " sun"], 1),
    (["His", " cat", " caught", " a", " bird"], 1),
    (["That", " cat", " is", " very", " old"], 1),
]
_MORE_NON_ACTIVATING = [
    ["The", " river", " flooded", " the", " town"],
    ["She", " paid", " the", " rent", " late"],
    ["They", " built", " a", " new", " bridge"],
    ["A", " storm", " hit", " the", " coast"],
    ["He", " sold", " his", " old", " truck"],
    ["Prices", " rose", " again", " in", " May"],
]


def many_cat_records() -> list[dict[str, Any]]:
    """12 activating and 13 non-activating records (enough for example_embedding)."""
    records = cat_records()
    for tokens, peak in _MORE_ACTIVATING:
        values = [0.0] * len(tokens)
        values[peak] = 0.7
        records.append({"tokens": tokens, "values": values})
    records += [{"tokens": t, "values": [0.0] * len(t)} for t in _MORE_NON_ACTIVATING]
    return records
