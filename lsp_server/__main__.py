"""`python -m lsp_server` is the `llm-lsp` command."""

import sys

from lsp_server.cli import main

sys.exit(main())
