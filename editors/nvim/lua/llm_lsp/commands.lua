--- The user commands of llm-lsp, mapped onto the server's code actions and commands.
---
--- :LlmExplain (range) runs `llmLsp.explain`; the server opens the answer with
--- `window/showDocument` (shown by `llm_lsp.ui`). :LlmFix (range) asks for the
--- `quickfix.llm` code actions of the lines, picks "Fix: <diagnostic>" when a diagnostic
--- is there, else "Fix this code", resolves it and applies its edit (you write the
--- buffer). :LlmAsk runs `llmLsp.ask` and keeps the conversation for follow-ups
--- (:LlmAsk! starts a new one). :LlmDoctor, :LlmReport and :LlmRegenerate run the
--- server commands of those names; a server without one says so instead of failing.
--- :LlmCancel cancels the running work through its work-done progress.
---
--- Each command ends with a `User LlmLspDone` autocommand whose data is
--- `{ command = "explain", result = ..., error = ... }`, for mappings and scripts.

local M = {}

local levels = vim.log.levels

local function llm()
  return require("llm_lsp")
end

local function has_011()
  return vim.fn.has("nvim-0.11") == 1
end

--- `client:request` on 0.11+, `client.request` on 0.10.
local function request(client, method, params, handler, bufnr)
  if has_011() then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function notify_server(client, method, params)
  if has_011() then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

local function done(command, result, err)
  vim.api.nvim_exec_autocmds("User", {
    pattern = "LlmLspDone",
    modeline = false,
    data = { command = command, result = result, error = err },
  })
end

--- Commands about the buffer's code: they need the client attached to that buffer
--- (the others, about the workspace, take any running llm-lsp client).
local BUFFER_COMMANDS = { explain = true, fix = true, regenerate = true }

local function need_client(command, bufnr)
  local for_buffer = BUFFER_COMMANDS[command] == true
  local client = llm().client(bufnr, not for_buffer)
  if client == nil then
    local message = for_buffer and "the server is not running for this buffer"
      or "the server is not running"
    message = message .. " (see :checkhealth llm_lsp)"
    llm().notify(message, levels.WARN)
    done(command, nil, message)
  end
  return client
end

--- Whether the server offers the command `name` (its `executeCommandProvider`).
--- @param client vim.lsp.Client
--- @param name string
function M.supports(client, name)
  local provider = client.server_capabilities.executeCommandProvider
  local commands = type(provider) == "table" and provider.commands or {}
  return vim.tbl_contains(commands, name)
end

local function report_error(command, err)
  local message = type(err) == "table" and err.message or tostring(err)
  llm().notify(command .. " failed: " .. message, levels.ERROR)
end

--- Run the server command for our `command` with `arguments`; `on_result(result)`.
local function execute(command, arguments, bufnr, on_result)
  local client = need_client(command, bufnr)
  if client == nil then
    return
  end
  local name = llm().options.server_commands[command]
  if name == nil or not M.supports(client, name) then
    local message = string.format(
      ":Llm%s is not supported by this server (it has no `%s` command)",
      command:sub(1, 1):upper() .. command:sub(2),
      tostring(name)
    )
    llm().notify(message, levels.WARN)
    done(command, nil, message)
    return
  end
  local params = { command = name, arguments = arguments }
  request(client, "workspace/executeCommand", params, function(err, result)
    if err then
      report_error(command, err)
      done(command, nil, err.message or tostring(err))
      return
    end
    if type(result) == "table" and result.cancelled then
      llm().notify(command .. " cancelled")
    elseif on_result then
      on_result(result, client)
    end
    done(command, result, nil)
  end, bufnr)
end

local function range_args(bufnr, line1, line2)
  return { uri = vim.uri_from_bufnr(bufnr), start = line1, ["end"] = line2 }
end

--- :LlmExplain: explain lines `line1`..`line2` (1-based) of `bufnr`.
function M.explain(bufnr, line1, line2)
  execute("explain", { range_args(bufnr, line1, line2) }, bufnr, function(result)
    if type(result) == "table" and result.ok and result.message then
      vim.api.nvim_echo({ { "llm-lsp: " .. result.message } }, false, {})
    end
  end)
end

local function lsp_diagnostics(bufnr, line1, line2)
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if d.lnum >= line1 - 1 and d.lnum <= line2 - 1 then
      local original = d.user_data and d.user_data.lsp
      table.insert(out, original or {
        range = {
          start = { line = d.lnum, character = d.col },
          ["end"] = { line = d.end_lnum or d.lnum, character = d.end_col or d.col },
        },
        message = d.message,
        severity = d.severity,
        source = d.source,
        code = d.code,
      })
    end
  end
  return out
end

local function pick_fix(actions)
  local fallback
  for _, action in ipairs(actions or {}) do
    if type(action.title) == "string" then
      if action.title:match("^Fix: ") then
        return action
      elseif action.title == "Fix this code" then
        fallback = action
      end
    end
  end
  return fallback
end

local function apply_fix(client, bufnr, action)
  if action.edit then
    vim.lsp.util.apply_workspace_edit(action.edit, client.offset_encoding)
  end
  if action.command then
    local cmd = action.command
    request(client, "workspace/executeCommand", {
      command = cmd.command,
      arguments = cmd.arguments,
    }, function(err, result)
      if err then
        report_error("fix", err)
      end
      done("fix", { applied = not err and type(result) == "table" and result.ok == true }, err)
    end, bufnr)
    return
  end
  done("fix", { applied = action.edit ~= nil, title = action.title }, nil)
end

--- :LlmFix: propose a fix for lines `line1`..`line2` and apply it to the buffer.
function M.fix(bufnr, line1, line2)
  local client = need_client("fix", bufnr)
  if client == nil then
    return
  end
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    range = { start = { line = line1 - 1, character = 0 }, ["end"] = { line = line2, character = 0 } },
    context = { diagnostics = lsp_diagnostics(bufnr, line1, line2), only = { "quickfix.llm" } },
  }
  request(client, "textDocument/codeAction", params, function(err, actions)
    if err then
      report_error("fix", err)
      done("fix", nil, err.message)
      return
    end
    local action = pick_fix(actions)
    if action == nil then
      llm().notify("no fix offered for these lines", levels.WARN)
      done("fix", nil, "no fix offered")
      return
    end
    local provider = client.server_capabilities.codeActionProvider
    local resolves = type(provider) == "table" and provider.resolveProvider
    if action.edit == nil and action.data ~= nil and resolves then
      request(client, "codeAction/resolve", action, function(rerr, resolved)
        if rerr then
          report_error("fix", rerr)
          done("fix", nil, rerr.message)
          return
        end
        if resolved == nil or (resolved.edit == nil and resolved.command == nil) then
          -- the server said why in a message
          done("fix", { applied = false }, nil)
          return
        end
        apply_fix(client, bufnr, resolved)
      end, bufnr)
    else
      apply_fix(client, bufnr, action)
    end
  end, bufnr)
end

--- Conversation of each client, for follow-up questions.
M.conversations = {}

--- :LlmAsk: ask `question` about the workspace; `fresh` starts a new conversation.
function M.ask(bufnr, question, fresh)
  local client = need_client("ask", bufnr)
  if client == nil then
    return
  end
  if fresh then
    M.conversations[client.id] = nil
  end
  local function send(text)
    if text == nil or vim.trim(text) == "" then
      done("ask", nil, "no question")
      return
    end
    local args = { question = text, conversation = M.conversations[client.id] or vim.NIL }
    execute("ask", { args }, bufnr, function(result)
      if type(result) == "table" and result.ok and type(result.conversation) == "string" then
        M.conversations[client.id] = result.conversation
      end
    end)
  end
  if question == nil or vim.trim(question) == "" then
    vim.ui.input({ prompt = "Ask llm-lsp: " }, send)
  else
    send(question)
  end
end

--- :LlmDoctor: a tiny real prompt to every provider; the report in a window.
function M.doctor(bufnr)
  execute("doctor", {}, bufnr, function(result)
    if type(result) == "table" and type(result.report) == "string" then
      require("llm_lsp.ui").show_text(result.report, "llm-lsp doctor", "text")
    end
  end)
end

--- :LlmReport: the server's cost report (opened as the server answers).
function M.report(bufnr)
  execute("report", {}, bufnr, function(result)
    if type(result) ~= "table" then
      return
    end
    -- the server opens the page itself (window/showDocument, external)
    if type(result.markdown) == "string" then
      require("llm_lsp.ui").show_text(result.markdown, "llm-lsp report")
    end
  end)
end

--- :LlmRegenerate: ask again, bypassing the answer cache, for the cursor's position.
function M.regenerate(bufnr, line1, line2)
  local cursor = vim.api.nvim_win_get_cursor(0)
  local args = range_args(bufnr, line1, line2)
  args.position = { line = cursor[1] - 1, character = cursor[2] }
  execute("regenerate", { args }, bufnr, nil)
end

--- Running work-done progress of llm-lsp: token -> title, per client.
M.progress = {}

--- :LlmCancel: cancel llm-lsp's running work (its progress's cancel button).
function M.cancel()
  local cancelled = 0
  for client_id, tokens in pairs(M.progress) do
    local client = vim.lsp.get_client_by_id(client_id)
    for token in pairs(tokens) do
      if client then
        notify_server(client, "window/workDoneProgress/cancel", { token = token })
        cancelled = cancelled + 1
      end
    end
  end
  if cancelled == 0 then
    llm().notify("nothing to cancel")
  end
end

--- Follow llm-lsp's `$/progress` (Neovim's LSP progress): show each step in the
--- message area when `opts.progress`, and remember what can be cancelled.
function M.watch_progress()
  local group = vim.api.nvim_create_augroup("llm_lsp_progress", { clear = true })
  vim.api.nvim_create_autocmd("LspProgress", {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client == nil or client.name ~= llm().name then
        return
      end
      local params = ev.data.params or {}
      local value = params.value or {}
      local tokens = M.progress[client.id] or {}
      M.progress[client.id] = tokens
      if value.kind == "begin" then
        tokens[params.token] = value.title or "llm-lsp"
      elseif value.kind == "end" then
        tokens[params.token] = nil
      end
      if llm().options.progress then
        local title = tokens[params.token] or value.title or "llm-lsp"
        local text = value.message and (title .. ": " .. value.message) or title
        vim.api.nvim_echo({ { text } }, false, {})
      end
    end,
  })
end

return M
