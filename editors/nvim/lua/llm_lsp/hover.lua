--- The hover that never waits for the model: the explanation shown when it is ready.
---
--- The plugin advertises `capabilities.experimental.llmLspExplanationReady`. A hover
--- then answers within the server's `hoverWait` with the static facts and a note that
--- the explanation is on its way, and the server sends `llmLsp/explanationReady`
--- (`textDocument` {uri, version}, `position`, `range`, `contents` = the full hover
--- markdown) once the model has answered. `on_explanation_ready` shows it:
---
--- 1. the hover float of that buffer is still open (`vim.lsp.buf.hover()` keeps it in
---    `b:lsp_floating_preview`, marked `w:textDocument/hover`) and the cursor is still on
---    the symbol: our part of the float is replaced in place. With several servers
---    answering, Neovim (0.11+) heads each part with `# <client name>` and separates
---    them with a rule; the other servers' parts (jedi-language-server's) are kept.
--- 2. no float, but the cursor is still on the symbol of the same buffer version: a
---    hover float opens with our part (`K` focuses it as usual).
--- 3. otherwise (another buffer, an edited buffer, the cursor moved on) it is dropped;
---    the next hover shows the explanation from the server's cache.

local M = {}

--- The capability the server looks for.
M.capability = "llmLspExplanationReady"

--- The notification's method.
M.method = "llmLsp/explanationReady"

--- The focus id (and window variable) of Neovim's hover float.
local HOVER = "textDocument/hover"

local function before(a, b)
  return a.line < b.line or (a.line == b.line and a.character <= b.character)
end

--- Whether the cursor of window `win` is on the symbol the notification is about
--- (within `range`, ends included, or exactly at `position`).
--- @return boolean
local function cursor_on(win, client, params)
  local encoding = client.offset_encoding or "utf-16"
  local here = vim.lsp.util.make_position_params(win, encoding).position
  local range = params.range
  if type(range) == "table" and range.start then
    return before(range.start, here) and before(here, range["end"])
  end
  local at = params.position or {}
  return here.line == at.line and here.character == at.character
end

--- The windows (not floats) showing `bufnr` whose cursor is on the symbol.
local function windows_on(bufnr, client, params)
  local found = {}
  for _, win in ipairs(vim.fn.win_findbuf(bufnr)) do
    if vim.api.nvim_win_get_config(win).relative == "" and cursor_on(win, client, params) then
      table.insert(found, win)
    end
  end
  return found
end

--- The open hover float of `bufnr`, if any.
--- @return integer?
function M.hover_float(bufnr)
  local win = vim.b[bufnr].lsp_floating_preview
  if type(win) ~= "number" or not vim.api.nvim_win_is_valid(win) then
    return nil
  end
  if vim.w[win][HOVER] ~= bufnr then
    return nil -- another preview (signature help, diagnostics)
  end
  return win
end

--- Names of the other clients attached to `bufnr` that answer hovers.
local function other_hover_clients(bufnr, client)
  local names = {}
  for _, other in ipairs(vim.lsp.get_clients({ bufnr = bufnr })) do
    if other.id ~= client.id and other.server_capabilities.hoverProvider then
      names[other.name] = true
    end
  end
  return names
end

local function is_rule(line)
  return line == "---" or line:match("^─+$") ~= nil
end

--- The float's lines with our part replaced by `ours` (raw markdown lines), the other
--- parts kept. Returns the raw lines (rules as `---`) ready to be rendered again.
--- @param lines string[] the float buffer's lines
--- @param ours string[]
--- @param name string our client's name
--- @param others table<string, boolean> the other hover clients' names
--- @return string[]
function M.merge(lines, ours, name, others)
  local header = "# " .. name
  local start
  for i, line in ipairs(lines) do
    if line == header then
      start = i
      break
    end
  end
  local result = {}
  local function copy(from, to)
    for i = from, to do
      table.insert(result, is_rule(lines[i]) and "---" or lines[i])
    end
  end
  if start == nil then
    if next(others) == nil or table.concat(lines, "\n"):find("on its way", 1, true) then
      return vim.list_extend({}, ours) -- the float is ours alone
    end
    -- someone else's float (our hover answered nothing): ours below it
    copy(1, #lines)
    table.insert(result, "---")
    table.insert(result, header)
    return vim.list_extend(result, ours)
  end
  -- our part ends at the rule before the next client's header (or at the end)
  local stop = #lines + 1
  for i = start + 1, #lines do
    local next_header = lines[i]:match("^# (.+)$")
    if next_header and others[next_header] and i > start + 1 and is_rule(lines[i - 1]) then
      stop = i - 1
      break
    end
  end
  copy(1, start)
  vim.list_extend(result, ours)
  copy(stop, #lines)
  return result
end

--- Render raw markdown lines as `vim.lsp.util.open_floating_preview` does, for a float
--- buffer that is (or not) stylized as markdown.
local function render(raw, stylized, opts)
  local util = vim.lsp.util
  if stylized and util._normalize_markdown and util._make_floating_popup_size then
    local width = util._make_floating_popup_size(raw, opts)
    return util._normalize_markdown(raw, { width = width })
  end
  return vim.split(table.concat(raw, "\n"), "\n", { trimempty = true })
end

--- Replace the lines of float `win` by `raw` (rendered) and resize it to fit.
local function rewrite(win, raw, source_win)
  local buf = vim.api.nvim_win_get_buf(win)
  local stylized = vim.bo[buf].filetype == "markdown"
  local opts = { wrap_at = vim.api.nvim_win_get_width(source_win) }
  local lines = render(raw, stylized, opts)
  vim.bo[buf].modifiable = true
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modifiable = false
  local ok, width, height = pcall(vim.lsp.util._make_floating_popup_size, lines, opts)
  if ok and width and height then
    pcall(vim.api.nvim_win_set_config, win, { width = width, height = height })
  end
end

--- Show a ready explanation (see the module's description). Returns what it did:
--- "updated", "opened" or "dropped" (for tests and logs).
--- @param params table
--- @param client vim.lsp.Client
--- @return string
function M.show(params, client)
  local doc = params.textDocument or {}
  local contents = params.contents
  if type(doc.uri) ~= "string" or contents == nil then
    return "dropped"
  end
  local bufnr = vim.uri_to_bufnr(doc.uri)
  if not vim.api.nvim_buf_is_loaded(bufnr) or not vim.lsp.buf_is_attached(bufnr, client.id) then
    return "dropped"
  end
  local version = doc.version
  if type(version) == "number" and vim.lsp.util.buf_versions[bufnr] ~= version then
    return "dropped" -- edited since: the server cancels such answers, a late one is stale
  end
  local wins = windows_on(bufnr, client, params)
  if #wins == 0 then
    return "dropped"
  end
  local ours = vim.lsp.util.convert_input_to_markdown_lines(contents)
  local float = M.hover_float(bufnr)
  if float ~= nil then
    local lines = vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(float), 0, -1, false)
    local raw = M.merge(lines, ours, client.name, other_hover_clients(bufnr, client))
    rewrite(float, raw, wins[1])
    return "updated"
  end
  if vim.api.nvim_get_current_buf() ~= bufnr or vim.api.nvim_get_current_win() ~= wins[1] then
    return "dropped" -- the float opens at the cursor: only where the user is
  end
  vim.lsp.util.open_floating_preview(ours, "markdown", { focus_id = HOVER })
  return "opened"
end

--- The `llmLsp/explanationReady` handler (a notification: nothing is returned).
function M.on_explanation_ready(err, params, ctx)
  if err ~= nil or type(params) ~= "table" then
    return
  end
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if client == nil then
    return
  end
  local ok, result = pcall(M.show, params, client)
  if not ok then
    require("llm_lsp").notify("cannot show the explanation: " .. tostring(result), vim.log.levels.WARN)
    return
  end
  vim.api.nvim_exec_autocmds("User", {
    pattern = "LlmLspExplanationReady",
    data = { result = result, uri = params.textDocument and params.textDocument.uri },
  })
end

--- `capabilities` extended with ours (a copy; the user's own capabilities are kept).
--- @param capabilities table?
--- @return table
function M.capabilities(capabilities)
  return vim.tbl_deep_extend(
    "force",
    vim.deepcopy(capabilities or {}),
    { experimental = { [M.capability] = true } }
  )
end

return M
