"""autointerp: explain and score neurons and SAE latents over gRPC and the legacy REST API."""

__version__ = "0.1.0"
