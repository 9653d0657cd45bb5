"""Seeds derived from a request's content (DESIGN.md §3a "Position and layout carry no label").

A scorer that lays examples out in prompts with ``random.Random(seed)`` and a constant seed
puts the activating examples on the same prompt positions for every latent of one size: a
judge with a position bias (answering "yes" to the last example, say) then scores the same
way, above or below chance, on every latent. Mixing the caller's seed with a hash of the
records' content gives every latent its own layout, while the same records (and the same
seed) always get the same one: results stay reproducible, and a judge's position bias
averages out over latents.

The explanation is deliberately not hashed: two explanations of one latent (best-of-k
candidates, a control) are scored on the same layout, so their comparison is paired.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from autointerp_grpc.delphi_compat import ActivatingExample, NonActivatingExample
from autointerp_grpc.records import Split, str_tokens_of

_SEP = b"\x00"


def _record_bytes(example: ActivatingExample | NonActivatingExample) -> Iterable[bytes]:
    yield b"A" if isinstance(example, ActivatingExample) else b"N"
    yield _SEP.join(t.encode("utf-8", "surrogatepass") for t in str_tokens_of(example))
    yield _SEP
    yield np.asarray(example.activations, dtype="<f8").tobytes()
    yield b"\x01"


def content_seed(seed: int, split: Split, salt: str) -> int:
    """A 63-bit seed from the caller's ``seed``, the scorer's ``salt`` (its name, so two
    scorers of one request do not share a layout) and every record of ``split`` in request
    order: tokens, activations and class. Linear in the records' size (hash it off the loop
    with the rest of a big request's preparation)."""
    digest = hashlib.blake2b(digest_size=8, person=b"autointerp-seed")
    digest.update(salt.encode("utf-8"))
    digest.update(_SEP)
    digest.update(str(int(seed)).encode("ascii"))
    digest.update(_SEP)
    for example in split.in_order:
        for chunk in _record_bytes(example):
            digest.update(chunk)
    return int.from_bytes(digest.digest(), "big") >> 1
