--- pixflow.capabilities: what each gateway and model accepts, kept as data in one place.
-- Every number has a source in ../shared/providers.md (section in the comment). Validation
-- (pixflow.validate) reads only this table: a gateway's limits change here and nowhere else.
-- `unverified` lists what is inferred rather than documented; docs/gateways.md repeats it.
--
-- Fields of a model's entry:
--   gateway_model        the gateway's own name for the model
--   modes                text, image, transition, fusion, extend
--   duration             { min, max } or { set = {...} }; duration_by_mode overrides per mode;
--                        duration_rules { { resolution =, max =, modes = } } limit by resolution
--   resolutions, aspect_ratios; aspect_ratio_modes (where it applies); aspect_ratio = false when
--                        the gateway ignores it (asking for one is then an error, not a drop)
--   references           { min, max, images_per_reference }; reference_names, reference_types;
--                        reference_name { chars, max, text }: the gateway's own rule for a name
--                        (chars: a Lua character class body), checked before sending
--   prompt_max, negative_prompt_max (nil: no negative prompt), negative_prompt_modes
--   seed { min, max } (nil: no seed); audio, audio_modes; watermark; count { min, max };
--   expand_prompt; uploads (local files can be uploaded); defaults (filled where the gateway
--   requires a field the unified request leaves optional)
local M = {}

local RATIOS5 = { "16:9", "4:3", "1:1", "3:4", "9:16" }
local RATIOS8 = { "16:9", "4:3", "1:1", "3:4", "9:16", "2:3", "3:2", "21:9" }
local RES = { "360p", "540p", "720p", "1080p" }
local SEED = { min = 0, max = 2147483647 }
-- The unified request's modes, the one list of their names (validate checks `mode` against it;
-- the core's request reader knows the same names, csrc/adapters/common.c mode_names, which
-- spec/facts_spec.lua holds to this list).
local ALL_MODES = { "text", "image", "transition", "fusion", "extend" }
M.MODES = ALL_MODES

local function with(base, over)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(over) do t[k] = v end
  return t
end

-- The PixVerse platform (providers.md 2.4, 2.5): fusion limits per model; the other modes'
-- endpoints document older model lists, so newer models there are inferred.
local PV_BASE = {
  modes = ALL_MODES,
  resolutions = RES,
  aspect_ratios = RATIOS5,
  aspect_ratio_modes = { "text", "fusion" },   -- image/transition/extend follow their inputs
  references = { min = 1, max = 7, images_per_reference = 1 },
  reference_names = true, reference_types = true,
  -- ref_name: the vendor's own client (PixVerse-MCP src/models/requests.py, [MCP] in
  -- providers.md 10.1) takes ^[a-zA-Z0-9_ ]+$ and at most 30 characters. pixflow takes that
  -- without the space: a name with a space cannot be written as @name followed by a space,
  -- the prompt rule of the vendor's guide (providers.md 2.4) and of pixflow
  reference_name = { chars = "A-Za-z0-9_", max = 30, text = "ASCII letters, digits and '_', 1 to 30 of them" },
  prompt_max = 2048,
  negative_prompt_max = 2048, negative_prompt_modes = { "text", "image" },
  seed = SEED,
  audio = false, audio_modes = { "fusion" },
  watermark = false,
  uploads = true,
  defaults = { duration = 5, resolution = "540p", aspect_ratio = "16:9" },
}
local PV = {
  ["v4.5"] = with(PV_BASE, { gateway_model = "v4.5", duration = { set = { 5, 8 } },
    references = { min = 1, max = 3, images_per_reference = 1 },
    duration_rules = { { resolution = "1080p", max = 5, modes = { "text" } } } }),
  ["v5"] = with(PV_BASE, { gateway_model = "v5", duration = { set = { 5, 8 } },
    references = { min = 1, max = 3, images_per_reference = 1 },
    duration_rules = { { resolution = "1080p", max = 5, modes = { "text" } } } }),
  ["v5.5"] = with(PV_BASE, { gateway_model = "v5.5", duration = { set = { 5, 8, 10 } },
    duration_rules = { { resolution = "1080p", max = 8 } },
    unverified = { "text, image, transition and extend modes (documented model lists stop at v5)" } }),
  ["v5.6"] = with(PV_BASE, { gateway_model = "v5.6", duration = { set = { 5, 8, 10 } },
    duration_rules = { { resolution = "1080p", max = 8 } }, audio = true,
    unverified = { "text, image, transition and extend modes (documented model lists stop at v5)" } }),
  ["v6"] = with(PV_BASE, { gateway_model = "v6", duration = { min = 1, max = 15 },
    aspect_ratios = RATIOS8, audio = true,
    unverified = { "durations 1-15 (documented for v6 by apimart, not by PixVerse)",
                   "modes other than fusion" } }),
  ["c1"] = with(PV_BASE, { gateway_model = "c1", duration = { min = 1, max = 15 },
    aspect_ratios = RATIOS8, audio = true,
    unverified = { "modes other than fusion" } }),
}

-- QuickRouter documents only the fusion call (seed 004); query and upload are inferred.
local QR = {}
for name, c in pairs(PV) do
  QR[name] = with(c, { modes = { "fusion" },
    unverified = { "the status query and the image upload paths (mirrors of PixVerse's)" } })
end

M.data = {
  pixverse = PV,
  quickrouter = QR,

  -- apimart (providers.md 7; seed 003): one model, five modes.
  apimart = {
    v6 = {
      gateway_model = "pixverse-v6",
      modes = ALL_MODES,
      duration = { min = 1, max = 15 },
      duration_by_mode = { transition = { 5, 8 } },  -- "首尾帧过渡模式仅支持 5 或 8 秒"
      resolutions = RES,
      aspect_ratios = RATIOS8,
      aspect_ratio_modes = { "text", "fusion" },     -- "size 仅在文生视频和多参考图融合模式生效"
      references = { min = 1, max = 7, images_per_reference = 1 },
      reference_names = false,                       -- @name is rewritten to "image N"
      reference_types = false,
      prompt_max = 5000,
      negative_prompt_max = 2048,
      seed = SEED,
      audio = true,
      watermark = true,
      uploads = true,                                -- /v1/uploads/images, 72 h
    },
  },

  -- DashScope (providers.md 5; seed 001): reference-to-video only.
  dashscope = {
    c1 = {
      gateway_model = "pixverse/pixverse-c1-r2v",
      modes = { "fusion" },
      duration = { min = 1, max = 15 },
      resolutions = RES,
      aspect_ratios = RATIOS8,
      references = { min = 1, max = 7, images_per_reference = 1 },
      reference_names = true, reference_types = false,
      seed = SEED,
      audio = true,
      watermark = true,
      uploads = true,                                -- temporary OSS upload, 48 h
      unverified = { "durations 1-15 (PixVerse's c1 range; DashScope documents only 5)",
                     "sizes for ratios other than 16:9 and 9:16", "ref_name on media items",
                     "aspect ratios 2:3, 3:2, 21:9", "the seed range" },
    },
    ["v5.6"] = {
      gateway_model = "pixverse/pixverse-v5.6-r2v",
      modes = { "fusion" },
      duration = { set = { 5, 8, 10 } },
      duration_rules = { { resolution = "1080p", max = 8 } },
      resolutions = RES,
      aspect_ratios = RATIOS5,
      references = { min = 1, max = 7, images_per_reference = 1 },
      reference_names = true, reference_types = false,
      seed = SEED,
      audio = true,
      watermark = true,
      uploads = true,
      unverified = { "durations (third-party: 5/8/10, only 5/8 at 1080P)",
                     "sizes for ratios other than 16:9 and 9:16", "ref_name on media items", "the seed range" },
    },
  },

  -- jiekou.ai (providers.md 4; seed 000): c1 reference-to-video; no upload call.
  jiekou = {
    c1 = {
      gateway_model = "pixverse-pixverse-c1-reference-to-video",
      modes = { "fusion" },
      duration = { min = 1, max = 15 },
      resolutions = RES,
      aspect_ratios = RATIOS8,
      references = { min = 1, max = 7, images_per_reference = 1 },
      reference_names = true, reference_types = true,
      audio = true,
      uploads = false,                               -- public URLs only (or an uploader)
      -- the task-result query and its fields: novita's, and jiekou's own client reads them
      -- ([jk] in providers.md 10.1)
      unverified = { "the error envelope" },
    },
  },

  -- baicaiinfer (providers.md 6; seed 002): PixVerse-v4.5-MR2V, up to 3 images per reference.
  baicai = {
    ["v4.5"] = {
      gateway_model = "PixVerse-v4.5-MR2V",
      modes = { "fusion" },
      duration = { set = { 5, 8 } },
      duration_rules = { { resolution = "1080p", max = 5 } },  -- "1080p时只支持输出5s"
      resolutions = RES,
      aspect_ratio = false,                          -- "无需指定，以输入的首张图的宽高比输出"
      references = { min = 1, max = 3, images_per_reference = 3 },
      reference_names = true, reference_types = true,
      negative_prompt_max = 2048,
      count = { min = 1, max = 4 },                  -- number_of_videos
      expand_prompt = true,                          -- need_expand_prompt
      uploads = true,
      defaults = { duration = 5, resolution = "540p" },
      unverified = { "the status, result and upload calls (a third-party client's)",
                     "the negative prompt length limit" },
    },
  },
}

--- The capabilities of provider's unified model, or nil.
function M.get(provider, model)
  local p = M.data[provider]
  return p and p[model]
end

--- The unified model names a provider serves, in version order.
function M.models(provider)
  local out = {}
  for name in pairs(M.data[provider] or {}) do out[#out + 1] = name end
  table.sort(out, function(a, b)
    local na, nb = tonumber(a:match("^v([%d.]+)")), tonumber(b:match("^v([%d.]+)"))
    if na and nb then return na < nb end
    if na or nb then return na ~= nil end
    return a < b
  end)
  return out
end

return M
