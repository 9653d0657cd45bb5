"""The one module that imports delphi.

``delphi/clients/__init__.py`` eagerly imports delphi's vLLM client, and every explainer and
scorer imports ``delphi.clients.client``, so a plain ``import delphi.explainers`` would pull
vLLM (and a CUDA torch). Before the first delphi import this module registers
``delphi.clients`` as a bare package module whose ``__path__`` points at the installed folder:
its submodules (``client``, ``types``) still import normally, but the package ``__init__`` never
runs. Everything else in the service imports delphi's names from here.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


def _register_bare_clients_package() -> None:
    if "delphi.clients" in sys.modules:
        return
    spec = importlib.util.find_spec("delphi")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "delphi is not installed; install it with `pip install --no-deps eai-delphi==0.1.3`"
        )
    clients = types.ModuleType("delphi.clients")
    clients.__path__ = [str(Path(next(iter(spec.submodule_search_locations))) / "clients")]
    clients.__package__ = "delphi.clients"
    sys.modules["delphi.clients"] = clients


_register_bare_clients_package()

# ruff: noqa: E402  (the imports below must follow the shim)
from delphi.clients.client import Client, Response
from delphi.explainers import ContrastiveExplainer, DefaultExplainer, Explainer
from delphi.latents import ActivatingExample, Latent, LatentRecord, NonActivatingExample
from delphi.scorers import (
    DetectionScorer,
    EmbeddingScorer,
    ExampleEmbeddingScorer,
    FuzzingScorer,
    IntruderScorer,
)
from delphi.scorers.classifier.classifier import Classifier
from delphi.scorers.classifier.intruder import IntruderResult, IntruderSentence
from delphi.scorers.classifier.sample import ClassifierOutput
from delphi.scorers.classifier.sample import _highlight as highlight_tokens
from delphi.scorers.classifier.sample import examples_to_samples as classifier_samples
from delphi.scorers.embedding.embedding import EmbeddingOutput
from delphi.scorers.embedding.embedding import examples_to_samples as embedding_samples
from delphi.scorers.embedding.example_embedding import Batch as ExampleEmbeddingBatch
from delphi.scorers.scorer import ScorerResult
from delphi.scorers.simulator.simulation.simulator import JSON_MAX_TOKENS, NeuronSimulator

__all__ = [
    "JSON_MAX_TOKENS",
    "ActivatingExample",
    "Classifier",
    "ClassifierOutput",
    "Client",
    "ContrastiveExplainer",
    "DefaultExplainer",
    "DetectionScorer",
    "EmbeddingOutput",
    "EmbeddingScorer",
    "ExampleEmbeddingBatch",
    "ExampleEmbeddingScorer",
    "Explainer",
    "FuzzingScorer",
    "IntruderResult",
    "IntruderScorer",
    "IntruderSentence",
    "Latent",
    "LatentRecord",
    "NeuronSimulator",
    "NonActivatingExample",
    "Response",
    "ScorerResult",
    "classifier_samples",
    "embedding_samples",
    "highlight_tokens",
]
