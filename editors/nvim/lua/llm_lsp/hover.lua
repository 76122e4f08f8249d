--- The hover that never waits for the model: the explanation shown when it is ready.
---
--- The plugin advertises `capabilities.experimental.llmLspExplanationReady` as
--- `{ inPlace = true }`: it puts the explanation into the open float itself, so the
--- server does not wait for the model at all (Neovim opens the float only when every
--- attached server has answered: any wait of ours would hold jedi's part too). A hover
--- answers with what is ready (the static facts; a cached answer when the same symbol
--- is hovered again) and a note that the explanation is on its way, and the server sends
--- `llmLsp/explanationReady`
--- (`textDocument` {uri, version}, `position`, `range`, `contents` = the full hover
--- markdown: static facts, explanation, footer) once the model has answered.
--- `on_explanation_ready` shows it:
---
--- 1. the hover float of that buffer is still open (`vim.lsp.buf.hover()` keeps it in
---    `b:lsp_floating_preview`, marked `w:textDocument/hover`), the cursor is still on
---    the symbol and our part of the float is that symbol's hover still waiting (it has
---    the note and starts with the same static facts): our part is replaced in place.
---    With several servers answering, Neovim (0.11+) heads each part with
---    `# <client name>` and separates them with a rule; the other servers' parts
---    (jedi-language-server's) are kept. A float of another symbol is left alone.
--- 2. no float, but the cursor is still on the symbol of the same buffer version: a
---    hover float opens with our part (`K` focuses it as usual).
--- 3. otherwise (another buffer, an edited buffer, the cursor moved on) it is dropped;
---    the next hover shows the explanation from the server's cache.
---
--- When the server's static facts are not ready within its `hoverWait` (jedi's first
--- look at a large module), our part of the float is a one-line placeholder ("...on its
--- way") and the notification brings the whole hover; an empty `contents.value` means the
--- name was nothing to hover: the placeholder is taken out of the float.
---
--- Neovim opens the hover float when every server has answered: a slow peer (jedi's
--- first look at a name can take seconds) may answer after the explanation arrived.
--- While a hover on the buffer is pending the explanation waits (polled every 20 ms, at
--- most `pending_wait_ms`), then updates the float that hover opened.

local M = {}

--- The capability the server looks for.
M.capability = "llmLspExplanationReady"

--- The notification's method.
M.method = "llmLsp/explanationReady"

--- The focus id (and window variable) of Neovim's hover float.
local HOVER = "textDocument/hover"

--- The words of the server's note in a hover whose explanation is still on its way.
M.note = "on its way"

--- How long an explanation waits for a hover still being answered (by a slower server)
--- before it is shown anyway, in milliseconds.
M.pending_wait_ms = 30000

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

--- A thematic break: `---` as servers send it, or the line of `─` Neovim draws for it.
local function is_rule(line)
  if line == "---" then
    return true
  end
  local rest = line:gsub("─", "") -- (a pattern would repeat the last byte of `─` only)
  return line ~= "" and rest == ""
end

--- Where our part of the float's `lines` is: the first and last line of its content
--- (after our `# <name>` header when several servers answered, else the whole float), or
--- nil when the float has no part of ours.
--- @param lines string[] the float buffer's lines
--- @param name string our client's name
--- @param others table<string, boolean> the other hover clients' names
--- @param alone boolean whether the float is known to be ours alone
--- @return integer?, integer?
function M.locate(lines, name, others, alone)
  local header = "# " .. name
  local start
  for i, line in ipairs(lines) do
    if line == header then
      start = i
      break
    end
  end
  if start == nil then
    -- one server answered: Neovim adds no header
    if alone or next(others) == nil or table.concat(lines, "\n"):find(M.note, 1, true) then
      return 1, #lines
    end
    return nil -- another server's float (ours answered nothing)
  end
  -- our part ends at the rule before the next client's header (or at the end)
  for i = start + 2, #lines do
    local next_header = lines[i]:match("^# (.+)$")
    if next_header and others[next_header] and is_rule(lines[i - 1]) then
      return start + 1, i - 2
    end
  end
  return start + 1, #lines
end

local function first_text(lines, from, to)
  for i = from, to do
    local line = vim.trim(lines[i])
    if line ~= "" and not is_rule(line) then
      return line
    end
  end
  return nil
end

--- Whether our part (`lines[first..last]`) is the hover the explanation `ours` completes:
--- it still says the explanation is on its way, and it starts as `ours` does (the same
--- static facts: the same symbol) or holds nothing but the note.
--- @return boolean
function M.awaits(lines, first, last, ours)
  local part = table.concat(lines, "\n", first, last)
  if not part:find(M.note, 1, true) then
    return false -- already complete (or not a hover of ours)
  end
  local head = first_text(lines, first, last)
  return head == first_text(ours, 1, #ours) or head:find(M.note, 1, true) ~= nil
end

--- The float's lines with `lines[first..last]` replaced by `ours` (raw markdown lines),
--- the rest kept, rules back to `---`: ready to be rendered again.
--- @return string[]
function M.merge(lines, first, last, ours)
  local result = {}
  for i = 1, first - 1 do
    table.insert(result, is_rule(lines[i]) and "---" or lines[i])
  end
  vim.list_extend(result, ours)
  for i = last + 1, #lines do
    table.insert(result, is_rule(lines[i]) and "---" or lines[i])
  end
  return result
end

--- The float's lines without our part `lines[first..last]`: its `# <name>` header and
--- the rule between it and a neighbouring part go too; {} when the float was ours alone.
--- (A placeholder whose name turned out to be nothing to hover: the server sends an
--- empty `contents.value`.)
--- @return string[]
function M.without(lines, first, last)
  local from, to = first, last
  if first > 1 and lines[first - 1]:match("^# ") then
    from = first - 1 -- our header
    if from > 1 and is_rule(lines[from - 1]) then
      from = from - 1 -- the rule after the part before ours
    elseif to < #lines and is_rule(lines[to + 1]) then
      to = to + 1 -- the rule before the part after ours
    end
  end
  local result = {}
  for i, line in ipairs(lines) do
    if i < from or i > to then
      table.insert(result, is_rule(line) and "---" or line)
    end
  end
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

--- Whether a hover request on `bufnr` is still unanswered by some client: Neovim opens
--- the float only when every server has answered.
local function hover_pending(bufnr)
  for _, c in ipairs(vim.lsp.get_clients({ bufnr = bufnr })) do
    for _, request in pairs(c.requests or {}) do
      if request.type == "pending" and request.method == HOVER and request.bufnr == bufnr then
        return true
      end
    end
  end
  return false
end

--- Show a ready explanation (see the module's description). Returns what it did:
--- "updated", "opened", "removed" (an empty hover: our placeholder taken out of the
--- float), "dropped", or "waiting" (a hover on that buffer is still being
--- answered: try again once its float is open; `impatient` shows it anyway).
--- @param params table
--- @param client vim.lsp.Client
--- @param impatient boolean?
--- @return string
function M.show(params, client, impatient)
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
  if not impatient and hover_pending(bufnr) then
    return "waiting" -- the explanation came before jedi's hover: update the float it opens
  end
  local wins = windows_on(bufnr, client, params)
  if #wins == 0 then
    return "dropped"
  end
  local nothing = type(contents) == "table" and contents.value == ""
  local ours = nothing and {} or vim.lsp.util.convert_input_to_markdown_lines(contents)
  local float = M.hover_float(bufnr)
  if float ~= nil then
    local lines = vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(float), 0, -1, false)
    local others = other_hover_clients(bufnr, client)
    local first, last = M.locate(lines, client.name, others, vim.w[float].llm_lsp_hover == true)
    if first == nil or not M.awaits(lines, first, last, ours) then
      return "dropped" -- the open float is another symbol's: leave it alone
    end
    if nothing then -- our placeholder, and the name is nothing to hover
      local rest = M.without(lines, first, last)
      if #rest == 0 then
        vim.api.nvim_win_close(float, true)
      else
        rewrite(float, rest, wins[1])
      end
      return "removed"
    end
    rewrite(float, M.merge(lines, first, last, ours), wins[1])
    return "updated"
  end
  if nothing then
    return "dropped"
  end
  if vim.api.nvim_get_current_buf() ~= bufnr or vim.api.nvim_get_current_win() ~= wins[1] then
    return "dropped" -- the float opens at the cursor: only where the user is
  end
  local _, win = vim.lsp.util.open_floating_preview(ours, "markdown", { focus_id = HOVER })
  vim.w[win].llm_lsp_hover = true
  return "opened"
end

local function attempt(params, client, since)
  local impatient = vim.uv.now() - since > M.pending_wait_ms
  local ok, result = pcall(M.show, params, client, impatient)
  if ok and result == "waiting" then
    vim.defer_fn(function()
      attempt(params, client, since)
    end, 20)
    return
  end
  if not ok then
    require("llm_lsp").notify("cannot show the explanation: " .. tostring(result), vim.log.levels.WARN)
    return
  end
  vim.api.nvim_exec_autocmds("User", {
    pattern = "LlmLspExplanationReady",
    data = { result = result, uri = params.textDocument and params.textDocument.uri },
  })
end

--- The `llmLsp/explanationReady` handler (a notification: nothing is returned).
function M.on_explanation_ready(err, params, ctx)
  if err ~= nil or type(params) ~= "table" then
    return
  end
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  if client ~= nil then
    attempt(params, client, vim.uv.now())
  end
end

--- `capabilities` extended with ours (a copy; the user's own capabilities are kept).
--- @param capabilities table?
--- @return table
function M.capabilities(capabilities)
  return vim.tbl_deep_extend(
    "force",
    vim.deepcopy(capabilities or {}),
    { experimental = { [M.capability] = { inPlace = true } } }
  )
end

return M
