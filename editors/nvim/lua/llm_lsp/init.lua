--- llm-lsp for Neovim: starts `llm-lsp serve` on Neovim's built-in LSP client.
---
--- `require("llm_lsp").setup(opts)` registers the server with `vim.lsp.config` and
--- `vim.lsp.enable` (Neovim 0.11+) or starts it with `vim.lsp.start` from a FileType
--- autocommand (0.10). Your own settings (`opts.settings`) reach the server as
--- `initializationOptions`, the layer it trusts. A project may add settings in
--- `.llm-lsp.lua` (a Lua file returning a table of `llmLsp` settings); it is read only
--- through `vim.secure.read`, so only after you allowed it, and the server is told the
--- workspace is trusted (`initializationOptions.trustedWorkspace`) only then. The
--- commands live in `llm_lsp.commands`, the windows in `llm_lsp.ui`, `:checkhealth
--- llm_lsp` in `llm_lsp.health`, the explanation that follows a hover in `llm_lsp.hover`.

local M = {}

--- The client's name (`vim.lsp.get_clients({ name = ... })`).
M.name = "llm_lsp"

--- The server's settings section.
M.section = "llmLsp"

--- Defaults of `setup(opts)`; see `:help llm_lsp-setup`.
M.defaults = {
  cmd = { "llm-lsp", "serve" },
  cmd_env = nil,
  filetypes = { "python" },
  root_markers = { "pyproject.toml", "setup.py", "setup.cfg", ".git" },
  settings = {},
  project_file = ".llm-lsp.lua",
  trusted = nil,
  window = "float",
  progress = true,
  on_attach = nil,
  capabilities = nil,
  server_commands = {
    explain = "llmLsp.explain",
    fix = "llmLsp.fix",
    ask = "llmLsp.ask",
    doctor = "llmLsp.doctor",
    report = "llmLsp.showReport",
    regenerate = "llmLsp.regenerate",
  },
}

--- The options in force (the defaults until `setup` is called).
M.options = vim.deepcopy(M.defaults)

--- Whether `setup` was called.
M.configured = false

--- Per workspace root: the project file's settings and whether the workspace is trusted.
--- @type table<string, { settings: table?, trusted: boolean, project: string }>
M.workspaces = {}

local function notify(message, level)
  vim.notify("llm-lsp: " .. message, level or vim.log.levels.INFO)
end
M.notify = notify

--- Read the project file of `root` through `vim.secure.read` (which asks you once and
--- remembers the answer). Returns the settings table (or nil) and whether you allowed it.
--- @param root string
--- @return table?, boolean, string
function M.read_project(root)
  local path = vim.fs.joinpath(root, M.options.project_file)
  if not vim.uv.fs_stat(path) then
    return nil, false, "absent"
  end
  local text = vim.secure.read(path)
  if text == nil then
    return nil, false, "not allowed"
  end
  -- An empty environment: the file can describe settings, not reach into the editor.
  local chunk, err = load(text, "@" .. path, "t", {})
  if chunk == nil then
    notify(path .. " is not valid Lua, ignored: " .. tostring(err), vim.log.levels.WARN)
    return nil, true, "invalid"
  end
  local ok, value = pcall(chunk)
  if not ok or type(value) ~= "table" then
    local why = ok and "it must return a table of llmLsp settings" or tostring(value)
    notify(path .. " ignored: " .. why, vim.log.levels.WARN)
    return nil, true, "invalid"
  end
  return value, true, "allowed"
end

--- Whether `root` is trusted: `opts.trusted` (a boolean or a function of the root) when
--- given, otherwise whether you allowed the project file with `vim.secure`.
--- @param root string?
--- @return boolean trusted, table? settings, string project
function M.workspace_trust(root)
  if root == nil then
    return M.options.trusted == true, nil, "no workspace"
  end
  local settings, allowed, project = M.read_project(root)
  local choice = M.options.trusted
  local trusted = allowed
  if type(choice) == "function" then
    local ok, answer = pcall(choice, root)
    if not ok then
      notify("the `trusted` option failed, not trusted: " .. tostring(answer), vim.log.levels.WARN)
    end
    trusted = ok and answer == true
  elseif type(choice) == "boolean" then
    trusted = choice
  end
  return trusted, settings, project
end

local function root_of(params, config)
  if config.root_dir then
    return config.root_dir
  end
  local uri = params.rootUri
  if type(uri) == "string" then
    return vim.uri_to_fname(uri)
  end
  return nil
end

--- `before_init`: decide trust for the workspace and pass it in `initializationOptions`.
local function before_init(params, config)
  local root = root_of(params, config)
  local trusted, settings, project = M.workspace_trust(root)
  if root ~= nil then
    M.workspaces[root] = { settings = settings, trusted = trusted, project = project }
  end
  local init = vim.deepcopy(params.initializationOptions or {})
  if type(init) ~= "table" or init == vim.NIL then
    init = {}
  end
  init.trustedWorkspace = trusted
  params.initializationOptions = init
end

--- `workspace/configuration`: the `llmLsp` section is what `vim.lsp.config` settings
--- hold, extended by the project file's (already allowed) settings.
local function on_configuration(err, params, ctx)
  local result = vim.lsp.handlers["workspace/configuration"](err, params, ctx)
  local client = vim.lsp.get_client_by_id(ctx.client_id)
  local workspace = client and client.root_dir and M.workspaces[client.root_dir]
  local extra = workspace and workspace.settings
  if type(result) ~= "table" or extra == nil then
    return result
  end
  for i, item in ipairs(params.items or {}) do
    if item.section == M.section then
      local base = result[i]
      if type(base) ~= "table" then
        base = {}
      end
      result[i] = vim.tbl_deep_extend("force", base, extra)
    end
  end
  return result
end

--- `{}` as a JSON object (an empty Lua table is sent as `[]`).
local function as_object(value)
  if type(value) == "table" and next(value) == nil then
    return vim.empty_dict()
  end
  return value
end

--- The client configuration handed to `vim.lsp.config` / `vim.lsp.start`.
--- @return vim.lsp.ClientConfig
function M.client_config()
  local opts = M.options
  local ui = require("llm_lsp.ui")
  local hover = require("llm_lsp.hover")
  return {
    name = M.name,
    cmd = opts.cmd,
    cmd_env = opts.cmd_env,
    filetypes = opts.filetypes,
    root_markers = opts.root_markers,
    init_options = { [M.section] = as_object(vim.deepcopy(opts.settings or {})) },
    -- ours merged into yours: the server then sends `llmLsp/explanationReady`
    capabilities = hover.capabilities(opts.capabilities),
    on_attach = opts.on_attach,
    before_init = before_init,
    handlers = {
      ["workspace/configuration"] = on_configuration,
      ["window/showDocument"] = ui.on_show_document,
      [hover.method] = hover.on_explanation_ready,
    },
  }
end

local function start_legacy(config)
  local group = vim.api.nvim_create_augroup("llm_lsp_start", { clear = true })
  local function start(buf)
    if not vim.tbl_contains(config.filetypes, vim.bo[buf].filetype) then
      return
    end
    local start_config = vim.deepcopy(config)
    start_config.before_init = config.before_init
    start_config.handlers = config.handlers
    start_config.on_attach = config.on_attach
    start_config.root_dir = vim.fs.root(buf, config.root_markers)
    vim.lsp.start(start_config, { bufnr = buf })
  end
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = config.filetypes,
    callback = function(ev)
      start(ev.buf)
    end,
  })
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then
      start(buf)
    end
  end
end

--- Configure and enable the server. Safe to call again (the new options win).
--- @param opts table?
function M.setup(opts)
  if vim.fn.has("nvim-0.10") == 0 then
    notify("Neovim 0.10 or newer is required", vim.log.levels.ERROR)
    return
  end
  M.options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  -- lists are replaced, not merged, when given
  for _, key in ipairs({ "cmd", "filetypes", "root_markers" }) do
    if opts and opts[key] then
      M.options[key] = opts[key]
    end
  end
  M.configured = true
  local config = M.client_config()
  require("llm_lsp.commands").watch_progress()
  if vim.lsp.config ~= nil and vim.lsp.enable ~= nil then
    vim.lsp.config(M.name, config)
    vim.lsp.enable(M.name)
  else
    start_legacy(config)
  end
end

--- The llm-lsp client attached to `bufnr` (with `any`, else any running one), or nil.
--- @param bufnr integer?
--- @param any boolean?
--- @return vim.lsp.Client?
function M.client(bufnr, any)
  local clients = vim.lsp.get_clients({ name = M.name, bufnr = bufnr or 0 })
  if #clients == 0 and any then
    clients = vim.lsp.get_clients({ name = M.name })
  end
  return clients[1]
end

return M
