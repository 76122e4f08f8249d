"""The pipelines behind every feature, independent of LSP (the CLI runs them too).

`hover` (static facts + a grounded explanation), `actions` (Explain and Fix on
the bounded agent loop), `ask` (questions about the workspace) and
`conversation`/`memory` (multi-turn chats kept within their window). Each
depends on a small protocol from `runtime`, never on the engine, which only
wires the parts together.
"""
