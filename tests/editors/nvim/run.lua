-- Drives the llm-lsp plugin in a real headless Neovim for tests/editors/test_nvim.py:
--   nvim --headless -u NONE -l run.lua
-- Environment: LLM_LSP_PLUGIN (editors/nvim), LLM_LSP_ROOT (the fixture project),
-- LLM_LSP_SCENARIO ("main", "untrusted", "missing"), LLM_LSP_OUT (where the JSON of what
-- the user saw is written), LLM_LSP_PYTHON (the interpreter that runs the server).
-- Each step records what is on screen; the Python test asserts on it. Any Lua error is
-- recorded as `error` and the script still writes its output and quits.

local env = vim.env
local out = { steps = {}, progress = {}, messages = {} }
local root = env.LLM_LSP_ROOT
local common = dofile(vim.fs.joinpath(vim.fs.dirname(debug.getinfo(1, "S").source:sub(2)), "common.lua"))
local reached, floats, close_floats = common.reached, common.floats, common.close_floats
local TIMEOUT = common.TIMEOUT
common.start(out)
vim.cmd("runtime plugin/llm_lsp.lua")

-- What the user is told (the server's window/showMessage; vim.notify: common.start).
local show_message = vim.lsp.handlers["window/showMessage"]
vim.lsp.handlers["window/showMessage"] = function(err, params, ctx)
  table.insert(out.messages, params.message)
  return show_message(err, params, ctx)
end

local finished = {}
vim.api.nvim_create_autocmd("User", {
  pattern = "LlmLspDone",
  callback = function(ev)
    finished[ev.data.command] = ev.data
  end,
})
vim.api.nvim_create_autocmd("LspProgress", {
  callback = function(ev)
    local value = ev.data.params.value or {}
    table.insert(out.progress, { kind = value.kind, title = value.title, message = value.message })
  end,
})

local function wait_done(command)
  assert(
    vim.wait(TIMEOUT, function()
      return finished[command] ~= nil
    end, 50),
    command .. " never finished"
  )
  local data = finished[command]
  finished[command] = nil
  return { result = data.result, error = data.error }
end

local function buffer_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
end

local function open(relative)
  vim.cmd.edit(vim.fs.joinpath(root, relative))
  local buf = vim.api.nvim_get_current_buf()
  local client
  assert(
    vim.wait(TIMEOUT, function()
      client = vim.lsp.get_clients({ bufnr = buf, name = "llm_lsp" })[1]
      return client ~= nil and client.initialized == true
    end, 50),
    "the llm-lsp client never attached to " .. relative
  )
  return buf, client
end

--- Hover like `K` does until a float shows text (jedi's first look may miss the
--- hover's static deadline on a busy machine: then Neovim says "No information"), and
--- while it says the explanation is on its way, until the plugin has put it in place.
local function hover(line, col)
  vim.api.nvim_win_set_cursor(0, { line, col })
  local deadline = vim.uv.now() + TIMEOUT
  while vim.uv.now() < deadline do
    close_floats()
    reached("hover")
    local told = #out.messages
    vim.lsp.buf.hover()
    local text
    vim.wait(60000, function()
      if #out.messages > told then
        return true -- "No information available": the hover answered nothing
      end
      for _, win in ipairs(floats()) do
        text = buffer_text(vim.api.nvim_win_get_buf(win))
        if text ~= "" then
          return true
        end
      end
      return false
    end, 50)
    if text and text ~= "" and text:find("on its way", 1, true) then
      -- the server did not wait for the model: the plugin puts the explanation in place
      vim.wait(60000, function()
        local win = floats()[1]
        text = win and buffer_text(vim.api.nvim_win_get_buf(win)) or ""
        return not text:find("on its way", 1, true)
      end, 50)
    end
    if text and text ~= "" then
      close_floats()
      return text
    end
    vim.wait(500)
  end
  error("no hover float appeared")
end

local function document_window()
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    local shown = vim.w[win].llm_lsp_document
    if shown then
      local config = vim.api.nvim_win_get_config(win)
      return {
        path = shown,
        float = config.relative ~= "",
        text = buffer_text(vim.api.nvim_win_get_buf(win)),
        filetype = vim.bo[vim.api.nvim_win_get_buf(win)].filetype,
      }, win
    end
  end
  return nil
end

local function checkhealth()
  vim.cmd("checkhealth llm_lsp")
  local text = buffer_text(vim.api.nvim_get_current_buf())
  vim.cmd("bwipeout!")
  return text
end

--- Allow or deny the project file as a user would (`:trust` / `:trust ++deny`).
local function secure(action)
  local path = vim.fs.joinpath(root, ".llm-lsp.lua")
  if action == "deny" then
    vim.secure.trust({ action = "deny", path = path })
    return
  end
  vim.cmd.edit(path)
  vim.secure.trust({ action = "allow", bufnr = vim.api.nvim_get_current_buf() })
  vim.cmd("bwipeout")
end

--- Queue the steps the test gave for `name` on the fake provider (its admin endpoint),
--- right before the step, as the e2e tests script it before each request.
local function script_fake(name)
  local steps = vim.json.decode(env.LLM_LSP_STEPS or "{}")[name]
  if steps == nil then
    return
  end
  common.post_script(vim.json.encode({ steps = steps }))
end

local scenarios = {}

function scenarios.main()
  secure("allow")
  require("llm_lsp").setup({ cmd = { env.LLM_LSP_PYTHON, "-m", "lsp_server", "serve" } })
  local _, client = open("shop/basket.py")
  reached("attached")
  out.server_info = client.server_info
  out.steps.hover = hover(19, 16)

  reached("explain")
  script_fake("explain")
  vim.cmd("16,19LlmExplain")
  out.steps.explain = wait_done("explain")
  local document, win = document_window()
  out.steps.explain.document = document
  if win then
    vim.api.nvim_win_close(win, true)
  end

  reached("fix")
  local stats = open("shop/stats.py")
  script_fake("fix")
  vim.cmd("6LlmFix")
  out.steps.fix = wait_done("fix")
  out.steps.fix.buffer = buffer_text(stats)
  vim.cmd("write")

  reached("ask")
  vim.cmd("LlmAsk where is VAT added?")
  out.steps.ask = wait_done("ask")
  document, win = document_window()
  out.steps.ask.document = document
  if win then
    vim.api.nvim_win_close(win, true)
  end

  reached("doctor")
  vim.cmd("LlmDoctor")
  out.steps.doctor = wait_done("doctor")
  document, win = document_window()
  out.steps.doctor.document = document
  if win then
    vim.api.nvim_win_close(win, true)
  end

  reached("cancel")
  script_fake("slow_explain")
  local before = #out.progress
  vim.cmd("LlmExplain")
  assert(vim.wait(TIMEOUT, function()
    for i = before + 1, #out.progress do
      local message = out.progress[i].message or ""
      if message:match("^Asking the model") then
        return true
      end
    end
    return false
  end, 20), "the slow Explain never asked the model")
  local asked = vim.uv.hrtime()
  vim.cmd("LlmCancel")
  out.steps.cancel = wait_done("explain")
  out.steps.cancel.seconds = (vim.uv.hrtime() - asked) / 1e9

  reached("regenerate")
  open("shop/basket.py")
  vim.api.nvim_win_set_cursor(0, { 19, 16 })
  vim.cmd("LlmRegenerate")
  out.steps.regenerate = wait_done("regenerate")
  vim.cmd("LlmReport")
  out.steps.report = wait_done("report")
  reached("checkhealth")
  out.steps.health = checkhealth()
  reached("checkhealth done")
end

function scenarios.untrusted()
  secure("deny")
  -- Neovim 0.10's way (`vim.lsp.start` from a FileType autocommand): hide 0.11's API
  -- from setup() only
  local config, enable = vim.lsp.config, vim.lsp.enable
  vim.lsp.config, vim.lsp.enable = nil, nil
  require("llm_lsp").setup({
    cmd = { env.LLM_LSP_PYTHON, "-m", "lsp_server", "serve" },
    window = "vsplit",
  })
  vim.lsp.config, vim.lsp.enable = config, enable
  out.steps.legacy = vim.api.nvim_get_autocmds({ group = "llm_lsp_start" })[1] ~= nil
  open("shop/basket.py")
  reached("attached")
  out.steps.hover = hover(19, 16)
  vim.cmd("LlmDoctor")
  out.steps.doctor = wait_done("doctor")
  out.steps.doctor.document = document_window()
  out.steps.doctor.windows = #vim.api.nvim_tabpage_list_wins(0)
  reached("checkhealth")
  out.steps.health = checkhealth()
end

function scenarios.missing()
  require("llm_lsp").setup({ cmd = { "llm-lsp-not-installed-here", "serve" } })
  -- a project file you allowed that tries more than returning settings
  secure("allow")
  local trusted, settings, project = require("llm_lsp").workspace_trust(root)
  out.steps.project = { trusted = trusted, settings = settings, project = project }
  -- a `trusted` option that fails leaves the workspace untrusted
  require("llm_lsp").options.trusted = function()
    error("no idea")
  end
  out.steps.failed_trust = (require("llm_lsp").workspace_trust(root))
  out.steps.health = checkhealth()
  vim.cmd("LlmExplain")
  out.steps.explain = wait_done("explain")
end

common.finish(scenarios[env.LLM_LSP_SCENARIO], out)
