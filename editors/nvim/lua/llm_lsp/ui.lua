--- Windows of llm-lsp: answer documents (Explain, Ask) and reports (Doctor) in a
--- floating window or a split, as `opts.window` says ("float", "split", "vsplit", "tab").
---
--- The server opens Explain and Ask answers with `window/showDocument` on a markdown
--- file it wrote outside the workspace; `on_show_document` shows those in our window
--- and leaves every other document to Neovim's own handler. Each window we open is
--- marked `w:llm_lsp_document` (the file shown) so scripts can find it.

local M = {}

local function window_style()
  return require("llm_lsp").options.window or "float"
end

local function float_geometry()
  local columns, lines = vim.o.columns, vim.o.lines
  local width = math.max(40, math.floor(columns * 0.8))
  local height = math.max(10, math.floor(lines * 0.8))
  width = math.min(width, columns)
  height = math.min(height, math.max(1, lines - 2))
  return {
    relative = "editor",
    width = width,
    height = height,
    row = math.floor((lines - height) / 2),
    col = math.floor((columns - width) / 2),
    border = "rounded",
    style = "minimal",
  }
end

--- Show buffer `buf` the configured way; returns the window.
--- @param buf integer
--- @param title string
--- @return integer
function M.show_buffer(buf, title)
  local style = window_style()
  local win
  if style == "float" then
    local config = float_geometry()
    config.title = " " .. title .. " "
    config.title_pos = "center"
    win = vim.api.nvim_open_win(buf, true, config)
    vim.keymap.set("n", "q", "<cmd>close<cr>", { buffer = buf, nowait = true, silent = true })
  else
    local split = ({ split = "split", vsplit = "vsplit", tab = "tabnew" })[style] or "vsplit"
    vim.cmd(split)
    win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, buf)
  end
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  vim.wo[win].conceallevel = 2
  return win
end

--- Show the markdown file `path` (re-read from disk, it may have been rewritten).
--- @param path string
--- @return integer window
function M.show_file(path)
  local buf = vim.fn.bufadd(path)
  vim.fn.bufload(buf)
  vim.api.nvim_buf_call(buf, function()
    vim.cmd("silent! checktime")
    if not vim.bo[buf].modified then
      vim.cmd("silent! edit!")
    end
  end)
  vim.bo[buf].filetype = "markdown"
  vim.bo[buf].buflisted = true
  local win = M.show_buffer(buf, vim.fn.fnamemodify(path, ":t"))
  vim.w[win].llm_lsp_document = path
  return win
end

--- Show `text` in a scratch buffer (the Doctor's report).
--- @param text string
--- @param title string
--- @param filetype string?
--- @return integer window
function M.show_text(text, title, filetype)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, vim.split(text, "\n", { plain = true }))
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].modifiable = false
  vim.bo[buf].filetype = filetype or "markdown"
  local win = M.show_buffer(buf, title)
  vim.w[win].llm_lsp_document = title
  return win
end

local function inside(path, root)
  if root == nil then
    return false
  end
  local normal_root = vim.fs.normalize(root)
  local normal = vim.fs.normalize(path)
  return normal == normal_root or normal:sub(1, #normal_root + 1) == normal_root .. "/"
end

--- `window/showDocument`: llm-lsp's answer documents (markdown outside the workspace)
--- in our window; anything else as Neovim shows it.
function M.on_show_document(err, params, ctx)
  local uri = params and params.uri
  if type(uri) == "string" and uri:match("^file:") and not params.external then
    local path = vim.uri_to_fname(uri)
    local client = vim.lsp.get_client_by_id(ctx.client_id)
    if path:match("%.md$") and not inside(path, client and client.root_dir) then
      local ok, result = pcall(M.show_file, path)
      if not ok then
        require("llm_lsp").notify("cannot show " .. path .. ": " .. tostring(result))
      end
      return { success = ok }
    end
  end
  if type(uri) == "string" and uri:match("^file:") and params.external then
    -- the cost report (HTML): the system's opener, else say where it is
    local path = vim.uri_to_fname(uri)
    local opened = false
    if vim.ui.open then
      local ok, cmd = pcall(vim.ui.open, path)
      opened = ok and cmd ~= nil
    end
    if not opened then
      require("llm_lsp").notify("report written to " .. path .. " (no browser opener found)")
    end
    return { success = opened }
  end
  return vim.lsp.handlers["window/showDocument"](err, params, ctx)
end

return M
