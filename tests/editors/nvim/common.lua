-- What the Neovim drivers (run.lua, hover.lua) share: the steps-reached log, the floating
-- windows on screen, the messages the user is told, the end of a session, and scripting
-- the fake provider through its admin endpoint. Loaded with `dofile` beside the driver.

local env = vim.env
local M = {}

local started = vim.uv.hrtime()

--- Steps reached, appended as they happen (what was reached if Neovim dies).
function M.reached(step)
  local log = assert(io.open(env.LLM_LSP_OUT .. ".log", "a"))
  log:write(string.format("%.1f s: %s\n", (vim.uv.hrtime() - started) / 1e9, step))
  log:close()
end

--- How long a driver waits for anything, in milliseconds.
M.TIMEOUT = 180000

--- The plugin on the runtime path, filetypes on, and what `vim.notify` tells the user
--- recorded into `out.messages`.
function M.start(out)
  vim.opt.rtp:prepend(env.LLM_LSP_PLUGIN)
  vim.cmd("filetype on")
  local messages = out.messages
  local notify = vim.notify
  vim.notify = function(message, level, o)
    table.insert(messages, tostring(message))
    return notify(message, level, o)
  end
end

function M.floats()
  local wins = {}
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(win).relative ~= "" then
      table.insert(wins, win)
    end
  end
  return wins
end

function M.close_floats()
  for _, win in ipairs(M.floats()) do
    pcall(vim.api.nvim_win_close, win, true)
  end
end

--- POST `body` (JSON text) to the fake provider's `/_fake/script` with LLM_LSP_PYTHON.
function M.post_script(body)
  local post = "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], "
    .. "data=sys.argv[2].encode(), headers={'Content-Type': 'application/json'}), timeout=60)"
  local url = env.LLM_LSP_FAKE .. "/_fake/script"
  local result = vim.system({ env.LLM_LSP_PYTHON, "-c", post, url, body }):wait(120000)
  assert(result.code == 0, "scripting the fake failed: " .. tostring(result.stderr))
end

--- Run `scenario`, write `out` (with any Lua error as `error`) as JSON, stop the clients
--- and quit.
function M.finish(scenario, out)
  local ok, err = xpcall(scenario, debug.traceback)
  if not ok then
    out.error = err
  end
  local file = assert(io.open(env.LLM_LSP_OUT, "w"))
  file:write(vim.json.encode(out))
  file:close()
  M.reached("written")
  for _, client in ipairs(vim.lsp.get_clients()) do
    if vim.fn.has("nvim-0.11") == 1 then
      client:stop()
    else
      client.stop()
    end
  end
  vim.wait(10000, function()
    return #vim.lsp.get_clients() == 0
  end, 50)
  M.reached("stopped")
  vim.cmd("qa!")
end

return M
