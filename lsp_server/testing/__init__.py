"""Test support shipped with the package.

`lsp_server.testing.fake_provider` holds `FakeProvider`, the project's own
OpenAI-compatible test double of the LLM provider (also runnable as
``scripts/fake_provider``).
"""
