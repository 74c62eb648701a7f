--- pixflow.capabilities: what each gateway and model accepts, kept as data in one place.
-- Every number here has a source in ../shared/providers.md; validation (pixflow.validate)
-- reads only this table, so a gateway's limits change here and nowhere else.
local M = {}

local PIXVERSE_RATIOS = { "16:9", "4:3", "1:1", "3:4", "9:16", "2:3", "3:2", "21:9" }
local RESOLUTIONS = { "360p", "540p", "720p", "1080p" }

M.data = {
  -- apimart: providers.md section 7 (seed 003). One model, pixverse-v6, five modes.
  apimart = {
    v6 = {
      gateway_model = "pixverse-v6",
      modes = { "text", "image", "transition", "fusion", "extend" },
      duration = { min = 1, max = 15, default = 5 },
      duration_by_mode = { transition = { 5, 8 } },     -- "首尾帧过渡模式仅支持 5 或 8 秒"
      resolutions = RESOLUTIONS,                        -- default 540p at the gateway
      aspect_ratios = PIXVERSE_RATIOS,
      aspect_ratio_modes = { "text", "fusion" },        -- "size 仅在文生视频和多参考图融合模式生效"
      references = { min = 1, max = 7, images_per_reference = 1 },
      -- apimart has no reference names: @name is rewritten to "image N" by position (adapter)
      reference_names = false,
      reference_types = false,                          -- subject/background is not sent
      prompt_max = 5000,
      negative_prompt_max = 2048,
      seed = { min = 0, max = 2147483647 },
      audio = true,
      watermark = true,
      image_sources = { "url" },                        -- public http(s) URLs only
    },
  },
}

--- The capabilities of provider's unified model, or nil.
function M.get(provider, model)
  local p = M.data[provider]
  return p and p[model]
end

--- The unified model names a provider serves, sorted.
function M.models(provider)
  local out = {}
  for name in pairs(M.data[provider] or {}) do out[#out + 1] = name end
  table.sort(out)
  return out
end

return M
