-- llm-lsp's user commands. They load the plugin's modules only when used; the server
-- itself starts once `require("llm_lsp").setup(opts)` has been called.
if vim.g.loaded_llm_lsp then
  return
end
vim.g.loaded_llm_lsp = true

local function commands()
  return require("llm_lsp.commands")
end

local command = vim.api.nvim_create_user_command

command("LlmExplain", function(o)
  commands().explain(vim.api.nvim_get_current_buf(), o.line1, o.line2)
end, { range = true, desc = "llm-lsp: explain the selected lines (or the current line)" })

command("LlmFix", function(o)
  commands().fix(vim.api.nvim_get_current_buf(), o.line1, o.line2)
end, { range = true, desc = "llm-lsp: propose a fix for the selected lines and apply it" })

command("LlmAsk", function(o)
  commands().ask(vim.api.nvim_get_current_buf(), o.args, o.bang)
end, { nargs = "*", bang = true, desc = "llm-lsp: ask about the workspace (! starts anew)" })

command("LlmDoctor", function()
  commands().doctor(vim.api.nvim_get_current_buf())
end, { desc = "llm-lsp: check every configured provider with a tiny prompt" })

command("LlmReport", function()
  commands().report(vim.api.nvim_get_current_buf())
end, { desc = "llm-lsp: show the cost report" })

command("LlmRegenerate", function(o)
  commands().regenerate(vim.api.nvim_get_current_buf(), o.line1, o.line2)
end, { range = true, desc = "llm-lsp: answer again without the cache" })

command("LlmCancel", function()
  commands().cancel()
end, { desc = "llm-lsp: cancel the running Explain/Fix/Ask" })
