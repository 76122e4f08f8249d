"""Reading the usage log back: `llm-lsp report` (HTML dashboard) and `llm-lsp cost`.

`data` groups the log's lines into requests and computes the figures, `html`
renders the self-contained dashboard (pygal SVG charts inlined), `terminal` the
compact summary table and one request's cost breakdown. Nothing here runs in
the server: these are offline tools over the file `telemetry/usage.py` writes.
"""
