-- Hovers in a real headless Neovim, for tests/editors/test_nvim_hover.py and
-- scripts/bench_nvim_hover.py:  nvim --headless -u NONE -l hover.lua
-- Environment: LLM_LSP_PLUGIN (editors/nvim), LLM_LSP_ROOT (the project), LLM_LSP_FILE
-- (the file hovered, relative), LLM_LSP_OUT (the JSON written), LLM_LSP_PYTHON (runs the
-- server and scripts the fake), LLM_LSP_SERVERS ("jls", "llm" or "both"), LLM_LSP_JLS
-- (jedi-language-server's command, JSON), LLM_LSP_CMD (llm-lsp's command, JSON, instead of
-- LLM_LSP_PYTHON -m lsp_server serve), LLM_LSP_SETTINGS (llmLsp settings, JSON),
-- LLM_LSP_WARM ({line, col}: hovered first, not timed), LLM_LSP_SITES ([{line, col}]:
-- hovered and timed; lines from 1, columns in bytes from 0), LLM_LSP_SCENARIO ("bench":
-- time the sites, and when a float says the explanation is on its way, the time until it
-- shows it; "ready": also the `llmLsp/explanationReady` handler, fed by hand, and
-- with LLM_LSP_SLOW set, a hover whose explanation arrives later).
-- Any Lua error is recorded as `error`; the script still writes its output and quits.

local env = vim.env
local out = { hovers = {}, messages = {}, ready = {} }
local root = env.LLM_LSP_ROOT
local common = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "common.lua"))
local reached, floats, close_floats = common.reached, common.floats, common.close_floats
local TIMEOUT = common.TIMEOUT
common.start(out)
vim.cmd("syntax on") -- as in a user's Neovim: the hover float is stylized markdown


local readies = {}
vim.api.nvim_create_autocmd("User", {
  pattern = "LlmLspExplanationReady",
  callback = function(ev)
    table.insert(readies, { result = ev.data.result, at = vim.uv.hrtime() })
  end,
})

local servers = env.LLM_LSP_SERVERS or "both"
local names = {}
if servers ~= "jls" then
  require("llm_lsp").setup({
    cmd = env.LLM_LSP_CMD and vim.json.decode(env.LLM_LSP_CMD) or { env.LLM_LSP_PYTHON, "-m", "lsp_server", "serve" },
    settings = vim.json.decode(env.LLM_LSP_SETTINGS or "{}"),
  })
  table.insert(names, "llm_lsp")
end
if servers ~= "llm" then
  vim.lsp.config("jedi_language_server", {
    cmd = vim.json.decode(env.LLM_LSP_JLS),
    filetypes = { "python" },
    root_markers = { "pyproject.toml", ".git" },
  })
  vim.lsp.enable("jedi_language_server")
  table.insert(names, "jedi_language_server")
end

local function float_lines()
  local win = floats()[1]
  if win == nil then
    return nil
  end
  return vim.api.nvim_buf_get_lines(vim.api.nvim_win_get_buf(win), 0, -1, false), win
end

local function open(relative)
  vim.cmd.edit(vim.fs.joinpath(root, relative))
  local buf = vim.api.nvim_get_current_buf()
  for _, name in ipairs(names) do
    assert(
      vim.wait(TIMEOUT, function()
        local client = vim.lsp.get_clients({ bufnr = buf, name = name })[1]
        return client ~= nil and client.initialized == true
      end, 20),
      name .. " never attached to " .. relative
    )
  end
  return buf
end

--- Hover like `K` at {line, col}; the milliseconds until a float shows text, and its lines.
local function hover(site)
  close_floats()
  vim.api.nvim_win_set_cursor(0, { site[1], site[2] })
  local told = #out.messages
  local t0 = vim.uv.hrtime()
  vim.lsp.buf.hover()
  local lines
  local ok = vim.wait(TIMEOUT, function()
    if #out.messages > told then
      return true -- "No information available"
    end
    lines = float_lines()
    return lines ~= nil and #lines > 0
  end, 2)
  local ms = (vim.uv.hrtime() - t0) / 1e6
  assert(ok, "no hover float appeared")
  return { ms = ms, lines = lines, said = out.messages[told + 1] }
end

local function sites()
  return vim.json.decode(env.LLM_LSP_SITES or "[]")
end

local scenarios = {}

--- Whether the open float still says the explanation is on its way.
local function pending()
  local lines = float_lines()
  return lines ~= nil and table.concat(lines, "\n"):find("on its way", 1, true) ~= nil
end

--- Until the explanation replaced the note in the float (at most a minute); whether it did.
local function explained()
  return vim.wait(60000, function()
    return not pending()
  end, 5) and float_lines() ~= nil
end

function scenarios.bench()
  open(env.LLM_LSP_FILE)
  reached("attached")
  -- the warm-up hover ends as every timed one does: with its explanation in the float
  hover(vim.json.decode(env.LLM_LSP_WARM))
  explained()
  for _, site in ipairs(sites()) do
    reached("hover " .. vim.inspect(site))
    local shown = hover(site)
    local t0 = vim.uv.hrtime()
    if pending() then
      -- the explanation follows: how long until the float shows it by itself
      shown.noted = true
      if explained() then
        shown.explained_ms = shown.ms + (vim.uv.hrtime() - t0) / 1e6
      end
    end
    table.insert(out.hovers, shown)
  end
  close_floats()
end

--- Feed our client's handler a notification as the server would send it.
local function feed(buf, params)
  local client = vim.lsp.get_clients({ bufnr = buf, name = "llm_lsp" })[1]
  local before = #readies
  client.handlers["llmLsp/explanationReady"](nil, params, { client_id = client.id, method = "llmLsp/explanationReady" })
  vim.wait(10000, function()
    return #readies > before -- (it waits while a hover on the buffer is pending)
  end, 10)
  local lines, win = float_lines()
  return {
    result = readies[before + 1] and readies[before + 1].result,
    lines = lines,
    floats = #floats(),
    height = win and vim.api.nvim_win_get_height(win),
  }
end

local function here(buf, contents)
  local client = vim.lsp.get_clients({ bufnr = buf, name = "llm_lsp" })[1]
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  return {
    textDocument = { uri = params.textDocument.uri, version = vim.lsp.util.buf_versions[buf] },
    position = params.position,
    contents = { kind = "markdown", value = contents or env.LLM_LSP_FED },
  }
end

function scenarios.ready()
  local buf = open(env.LLM_LSP_FILE)
  reached("attached")
  out.capabilities = vim.lsp.get_clients({ bufnr = buf, name = "llm_lsp" })[1].capabilities
  hover(vim.json.decode(env.LLM_LSP_WARM))
  local site = sites()[1]
  -- 1. the float of both servers is open, our part waiting (the fake's answer says it is
  -- on its way): the explanation of another symbol leaves it alone; this symbol's (the
  -- same static facts first, as the server sends them) replaces our part, jedi's kept
  local shown = hover(site)
  out.ready.before = shown.lines
  local head = shown.lines[vim.fn.index(shown.lines, "# llm_lsp") + 2]
  out.ready.other = feed(buf, here(buf, "**function** `elsewhere`\n\n" .. env.LLM_LSP_FED))
  out.ready.update = feed(buf, here(buf, head .. "\n\n" .. env.LLM_LSP_FED))
  -- (our part first: it ends at the rule before the next server's header)
  local h = require("llm_lsp.hover")
  local lines = { "# llm_lsp", "facts", "───", "waiting: on its way", "───", "# jedi_language_server", "types" }
  local first, last = h.locate(lines, "llm_lsp", { jedi_language_server = true }, false)
  out.ready.first = h.merge(lines, first, last, { "facts", "---", "explained" })
  -- (an empty hover takes our placeholder out, with its header and one rule)
  out.ready.without_first = h.without(lines, first, last)
  local after = { "# jedi_language_server", "types", "───", "# llm_lsp", "_Reading: on its way._" }
  first, last = h.locate(after, "llm_lsp", { jedi_language_server = true }, false)
  out.ready.without_last = h.without(after, first, last)
  out.ready.without_alone = h.without({ "_Reading: on its way._" }, 1, 1)
  -- 2. the float was closed, the cursor has not moved: a float opens
  close_floats()
  out.ready.reopen = feed(buf, here(buf))
  -- 3. the cursor moved on (within the range is still "on" it; outside is not)
  close_floats()
  local params = here(buf)
  params.range = { start = params.position, ["end"] = params.position }
  vim.api.nvim_win_set_cursor(0, { site[1] + 1, 0 })
  out.ready.moved = feed(buf, params)
  -- 4. another version of the document: dropped
  vim.api.nvim_win_set_cursor(0, { site[1], site[2] })
  params = here(buf)
  params.textDocument.version = params.textDocument.version - 1
  out.ready.stale = feed(buf, params)
  close_floats()
  if env.LLM_LSP_SLOW ~= nil then
    -- 5. end to end: the provider is slow (the test sets it); the float opens first, then changes by itself
    common.post_script(env.LLM_LSP_SLOW)
    local slow = sites()[2]
    local opened = hover(slow)
    local _, win = float_lines()
    local t0 = vim.uv.hrtime()
    local lines
    vim.wait(60000, function()
      lines = float_lines()
      return lines ~= nil and table.concat(lines, "\n"):find(env.LLM_LSP_ANSWER, 1, true) ~= nil
    end, 20)
    local _, win_after = float_lines()
    out.ready.slow = {
      ms = opened.ms,
      opened = opened.lines,
      later = lines,
      later_ms = opened.ms + (vim.uv.hrtime() - t0) / 1e6,
      same_window = win ~= nil and win == win_after,
      results = vim.tbl_map(function(r)
        return r.result
      end, readies),
    }
  end
end

common.finish(scenarios[env.LLM_LSP_SCENARIO], out)
