"""llm-lsp: a language server that brings grounded LLM help into the editor."""

__version__ = "0.1.0"
