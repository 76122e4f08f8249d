--- `:checkhealth llm_lsp`: Neovim's version, the server command and its version, the
--- provider the server would use and whether a key is present (never the key itself:
--- the server's `settings` command prints it as "set"), and the running clients with
--- their workspace trust.

local M = {}

local health = vim.health

--- The server command without its trailing `serve`, for `--version` and `settings`.
local function base_command(cmd)
  local base = vim.deepcopy(cmd)
  if base[#base] == "serve" then
    table.remove(base)
  end
  return base
end

local function run(cmd, env)
  local ok, proc = pcall(vim.system, cmd, { text = true, env = env })
  if not ok then
    return nil, tostring(proc)
  end
  local result = proc:wait(60000)
  if result.code ~= 0 then
    return nil, vim.trim((result.stderr or "") .. " (exit " .. tostring(result.code) .. ")")
  end
  return result.stdout or "", nil
end

--- `settings` output as a table: "llm.model = 'gpt-4o'" -> { ["llm.model"] = "gpt-4o" }.
local function parse_settings(text)
  local out = {}
  for line in vim.gsplit(text, "\n", { plain = true }) do
    local key, value = line:match("^([%w_.]+) = (.*)$")
    if key then
      out[key] = value:gsub("^'(.*)'$", "%1")
    end
  end
  return out
end

local function without_userinfo(url)
  return (url:gsub("//[^/@]*@", "//"))
end

local function check_provider(base, opts)
  health.start("llm-lsp: provider")
  local settings = opts.settings or {}
  local text, err = run(vim.list_extend(vim.deepcopy(base), { "settings" }), opts.cmd_env)
  if text == nil then
    health.error("`" .. table.concat(base, " ") .. " settings` failed: " .. err)
    return
  end
  local values = parse_settings(text)
  local model = settings.model or values["llm.model"] or "?"
  local base_url = settings.baseUrl or values["llm.base_url"]
  if base_url == nil or base_url == "None" then
    base_url = "the OpenAI API"
  end
  health.ok("primary model: " .. model .. " at " .. without_userinfo(base_url))
  local local_url = settings.localBaseUrl or values["llm.local_base_url"]
  if local_url and local_url ~= "None" then
    health.ok("local tier: " .. without_userinfo(local_url))
  end
  if values["llm.providers"] and values["llm.providers"] ~= "the defaults" then
    health.ok("providers: set by LLM_LSP_PROVIDERS / llmLsp.providers")
  end
  if settings.apiKey ~= nil then
    health.ok("API key: set in setup() settings (not shown)")
  elseif values["llm.api_key"] == "set" then
    health.ok("API key: set in the server's environment (not shown)")
  elseif local_url and local_url ~= "None" then
    health.warn("API key: not set; only the local tier and static answers are available")
  else
    health.warn("API key: not set; hovers show static facts only (offline mode)", {
      "Set OPENAI_API_KEY in the environment Neovim starts the server with",
    })
  end
end

local function check_clients(llm)
  health.start("llm-lsp: running")
  local clients = vim.lsp.get_clients({ name = llm.name })
  if #clients == 0 then
    health.info("no llm-lsp client is running (open a Python file in a project)")
    return
  end
  for _, client in ipairs(clients) do
    local info = client.server_info or {}
    local root = client.root_dir or "(single file)"
    local workspace = client.root_dir and llm.workspaces[client.root_dir] or {}
    local trust = workspace.trusted and "trusted" or "not trusted"
    health.ok(
      string.format(
        "client %d: %s %s for %s (%s; project file: %s)",
        client.id,
        info.name or "llm-lsp",
        info.version or "?",
        root,
        trust,
        workspace.project or "absent"
      )
    )
  end
end

function M.check()
  local llm = require("llm_lsp")
  health.start("llm-lsp: Neovim")
  local version = tostring(vim.version())
  if vim.fn.has("nvim-0.11") == 1 then
    health.ok("Neovim " .. version .. " (vim.lsp.config / vim.lsp.enable)")
  elseif vim.fn.has("nvim-0.10") == 1 then
    health.ok("Neovim " .. version .. " (vim.lsp.start)")
  else
    health.error("Neovim " .. version .. " is too old: 0.10 or newer is required")
  end
  if llm.configured then
    health.ok("setup() called")
  else
    health.warn('setup() has not been called', { 'Add require("llm_lsp").setup({}) to your config' })
  end

  health.start("llm-lsp: server")
  local opts = llm.options
  local cmd = opts.cmd or {}
  local exe = cmd[1] and vim.fn.exepath(cmd[1]) or ""
  if exe == "" then
    health.error("server command not found: " .. tostring(cmd[1]), {
      "pip install llm-lsp (or the repository: pip install .), then make `llm-lsp` "
        .. "reachable on PATH, or set `cmd` in setup()",
    })
    return
  end
  health.ok("server command found: " .. exe .. " (cmd: " .. table.concat(cmd, " ") .. ")")
  local base = base_command(cmd)
  local out, err = run(vim.list_extend(vim.deepcopy(base), { "--version" }), opts.cmd_env)
  if out == nil then
    health.error("`" .. table.concat(base, " ") .. " --version` failed: " .. err)
    return
  end
  health.ok("version: " .. vim.trim(out))
  check_provider(base, opts)
  check_clients(llm)
end

return M
