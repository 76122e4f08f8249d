"""An OpenAI-compatible test double of the LLM provider, owned by the project.

`FakeProvider` is a small HTTP server on 127.0.0.1 (standard library only) that speaks
enough of the OpenAI API for the real `openai` client to talk to it:

* ``POST /v1/chat/completions``: plain and streamed (SSE) answers, tool calls, usage
  (including ``stream_options.include_usage`` and ``prompt_tokens_details.cached_tokens``);
* ``GET /v1/models`` and ``GET /v1/models/{id}``;
* ``POST /v1/embeddings``: deterministic, normalised vectors (see `fake_embedding`),
  as floats or base64 as the client asks.

Tests script its behaviour per request with `Step` values queued by
`FakeProvider.script` (optionally per model and per endpoint): a delay, an HTTP error
with an OpenAI error body and ``Retry-After``/``retry-after-ms`` headers, a malformed
body, an abrupt TCP reset (before the response or in the middle of a stream), an answer
cut short on a clean close (`truncate_stream`), or a given
answer or tool call. Every request is recorded as a `RecordedRequest`, including
whether the client hung up while the server was still working on it.

The server runs in a background thread, so it serves sync tests, async tests and clients
in other processes alike. Another process (or a human) can script it over HTTP:

* ``POST /_fake/script`` with ``{"steps": [{...Step fields...}], "model": ..., "endpoint": ...}``
* ``POST /_fake/default`` with ``{"step": {...}}``
* ``GET /_fake/requests`` returns ``{"requests": [...]}``
* ``POST /_fake/reset`` clears the script, the default override and the recordings

Run it by hand with ``python -m lsp_server.testing.fake_provider --port 8765`` (or
``scripts/fake_provider``) for demos and benchmarks.

The package's modules: `steps` (`Step`, `RecordedRequest`, constants), `responses` (the
bodies sent), `handler` (the HTTP server and request handler), `provider` (`FakeProvider`)
and `cli` (`main`).
"""

from __future__ import annotations

from lsp_server.testing.fake_provider.cli import main
from lsp_server.testing.fake_provider.provider import FakeProvider
from lsp_server.testing.fake_provider.responses import fake_embedding
from lsp_server.testing.fake_provider.steps import (
    DEFAULT_TEXT,
    EMBEDDING_DIMS,
    Endpoint,
    RecordedRequest,
    Step,
)

__all__ = [
    "DEFAULT_TEXT",
    "EMBEDDING_DIMS",
    "Endpoint",
    "FakeProvider",
    "RecordedRequest",
    "Step",
    "fake_embedding",
    "main",
]
