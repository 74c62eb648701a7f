-- Request validation: misuse raises, every impossible value is named in one "invalid" error,
-- and nothing reaches the network (the base URL here is a closed loopback port).
local pixflow = require "pixflow"

local client
local function hero(extra)
  local r = { prompt = "@hero walks into @city",
              references = { { name = "hero", image = "https://e.com/hero.png" },
                             { name = "city", image = "https://e.com/city.jpg", type = "background" } } }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

local function problems_of(err)
  local fields = {}
  for _, p in ipairs(err.problems) do fields[#fields + 1] = p.field end
  return fields
end

describe("validation", function()
  setup(function()
    client = assert(pixflow.new{ provider = "apimart", api_key = "k", base_url = "http://127.0.0.1:9" })
  end)
  teardown(function() client:close() end)

  it("a valid request is accepted (and queued, not sent, by submit)", function()
    local t = assert(client:submit(hero{ duration = 5, resolution = "720p", aspect_ratio = "16:9" }))
    assert.equal("submitting", t.status)
    assert.equal("fusion", t.mode)
    t:close()
  end)

  describe("raises on misuse", function()
    it("no table", function()
      assert.has_error(function() client:submit() end,
        "bad argument #1 to 'submit' (table expected, got no value)")
    end)
    it("an unknown field, with a suggestion", function()
      assert.has_error(function() client:submit{ prompt = "x", durration = 5 } end,
        "bad argument #1 to 'submit' (unknown field 'durration'; did you mean 'duration'?)")
    end)
    it("a wrong type", function()
      assert.has_error(function() client:submit{ prompt = "x", duration = "5" } end,
        "bad argument #1 to 'submit' (field 'duration' must be number, got string)")
      assert.has_error(function() client:submit{ prompt = "x", duration = 5.5 } end,
        "bad argument #1 to 'submit' (field 'duration' must be a whole number, got 5.5)")
    end)
    it("a malformed reference", function()
      assert.has_error(function()
        client:submit{ prompt = "x", references = { { name = "a", img = "https://e.com/a.png" } } }
      end, "bad argument #1 to 'submit' (unknown field 'references[1].img'; did you mean 'references[1].image'?)")
      assert.has_error(function() client:submit{ prompt = "x", references = { "https://e.com/a.png" } } end,
        "bad argument #1 to 'submit' (field 'references[1]' must be a table, got string)")
    end)
    it("points at the caller's line", function()
      local ok, err = pcall(function() client:submit{ prompt = 1 } end)
      assert.is_false(ok)
      assert.matches("validate_spec.lua:%d+: bad argument #1 to 'submit'", err)
    end)
    it("new: unknown provider and unknown option", function()
      assert.has_error(function() pixflow.new{ provider = "apimrat", api_key = "k" } end,
        "bad argument #1 to 'new' (unknown provider 'apimrat'; did you mean 'apimart'?)")
      assert.has_error(function() pixflow.new{ provider = "apimart", api_key = "k", pol = {} } end,
        "bad argument #1 to 'new' (unknown field 'pol'; did you mean 'poll'?)")
      assert.has_error(function() pixflow.new{ provider = "apimart", api_key = "k", poll = { intervall = 1 } } end,
        "bad argument #1 to 'new' (unknown field 'poll.intervall'; did you mean 'poll.interval'?)")
    end)
  end)

  describe("names every problem in one error, before any request", function()
    it("duration 20, an unknown aspect ratio, a missing @name and 8 references", function()
      local refs = {}
      for i = 1, 8 do refs[i] = { name = "r" .. i, image = "https://e.com/" .. i .. ".png" } end
      local t, err = client:submit{ prompt = "@r1 meets @villain ", references = refs, duration = 20,
                                    aspect_ratio = "5:4" }
      assert.is_nil(t)
      assert.equal("invalid", err.kind)
      assert.equal("apimart", err.provider)
      assert.same({ "references", "prompt", "duration", "aspect_ratio" }, problems_of(err))
      local msg = tostring(err)
      assert.matches("4 problems", msg)
      assert.matches("8 references is not allowed (apimart v6 takes 1 to 7)", msg, 1, true)
      assert.matches("@villain has no matching reference", msg, 1, true)
      assert.matches("duration: 20 is not allowed (apimart v6 allows 1 to 15 seconds)", msg, 1, true)
      assert.matches('aspect_ratio: "5:4" is not allowed (apimart v6 allows 16:9, 4:3, 1:1, 3:4, 9:16, 2:3, 3:2, 21:9)', msg, 1, true)
      assert.equal(0, client:inflight())
    end)

    local cases = {
      { "an empty prompt", { prompt = "" }, "prompt", "a prompt is required" },
      { "an @name not followed by a space", hero{ prompt = "@hero, walks into @city" }, "prompt",
        "@hero must be followed by a space or the end of the prompt" },
      { "an unknown model", { prompt = "x", model = "v9" }, "model", '"v9" is not served by apimart (allowed: v6)' },
      { "an unknown resolution", { prompt = "x", resolution = "4k" }, "resolution", '"4k" is not allowed' },
      { "transition durations", { prompt = "x", first_frame = "https://e.com/a.png",
        last_frame = "https://e.com/b.png", duration = 6 }, "duration", "transition allows 5, 8 seconds" },
      { "a half transition", { prompt = "x", first_frame = "https://e.com/a.png" }, "last_frame",
        "transition needs both first_frame and last_frame" },
      { "two modes at once", hero{ image = "https://e.com/a.png" }, "mode", "select different modes" },
      { "a mode that contradicts the fields", { prompt = "x", mode = "fusion" }, "references",
        "fusion needs at least one reference" },
      { "an unknown mode", { prompt = "x", mode = "remix" }, "mode", '"remix" is not a mode' },
      { "aspect ratio in image mode", { prompt = "x", image = "https://e.com/a.png",
        aspect_ratio = "16:9" }, "aspect_ratio", "applies aspect_ratio only in text, fusion modes" },
      { "a local file that is not an image", { prompt = "@a x",
        references = { { name = "a", image = "Makefile" } } }, "references[1].image",
        "is not a PNG, JPEG, WebP or GIF file" },
      { "a data URI", { prompt = "x", image = "data:image/png;base64,AAAA" }, "image",
        "data URIs are not accepted" },
      { "image and images together", { prompt = "@a x",
        references = { { name = "a", image = "https://e.com/1.png", images = { "https://e.com/2.png" } } } },
        "references[1]", "give image or images, not both" },
      { "two images per reference where one is taken", { prompt = "@a x",
        references = { { name = "a", images = { "https://e.com/1.png", "https://e.com/2.png" } } } },
        "references[1].images", "2 images is too many (apimart v6 takes 1 per reference)" },
      { "duplicate reference names", { prompt = "@a x", references = {
        { name = "a", image = "https://e.com/1.png" }, { name = "a", image = "https://e.com/2.png" } } },
        "references[2].name", "is used by two references" },
      { "a reference name that cannot be written after @", { prompt = "x",
        references = { { name = "big hero", image = "https://e.com/1.png" } } }, "references[1].name",
        "is not a usable name" },
      { "an unknown reference type", { prompt = "@a x",
        references = { { name = "a", image = "https://e.com/1.png", type = "prop" } } },
        "references[1].type", '"prop" is not a reference type (allowed: subject, background)' },
      { "a seed out of range", { prompt = "x", seed = -1 }, "seed", "-1 is outside 0 to 2147483647" },
      { "a prompt too long", { prompt = ("x"):rep(5001) }, "prompt", "5001 characters is too long" },
      { "invalid UTF-8", { prompt = "caf\233" }, "prompt", "is not valid UTF-8" },
      { "a negative prompt too long", { prompt = "x", negative_prompt = ("n"):rep(2049) },
        "negative_prompt", "at most 2048 characters" },
      { "an empty extend id", { prompt = "x", extend_from = "" }, "extend_from", "the task id is empty" },
      { "a NUL byte in the prompt", { prompt = "a\0b" }, "prompt", "holds a NUL byte at byte offset 1" },
      { "a NUL byte in an image URL", { prompt = "x", image = "https://e.com/a.png\0.exe" }, "image",
        "holds a NUL byte at byte offset 19" },
      { "a NUL byte in an extend id", { prompt = "x", extend_from = "task\0x" }, "extend_from", "NUL byte" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local t, err = client:submit(c[2])
        assert.is_nil(t)
        assert.equal("invalid", err.kind)
        assert.truthy(next(err.problems))
        local found
        for _, p in ipairs(err.problems) do
          if p.field == c[3] and p.message:find(c[4], 1, true) then found = true end
        end
        assert.is_true(found, ("expected a problem on %s saying %q in:\n%s"):format(c[3], c[4], tostring(err)))
        assert.equal(0, client:inflight())
      end)
    end

    -- a stat or an open can wait on the disk: submit never looks at a file the gateway uploads;
    -- the engine's worker does, and the task fails at the next pump, in the validation's words
    it("a local image that is missing, empty, a directory or too large fails its task, nothing sent", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir -p " .. dir .. "/frames.png && : > " .. dir .. "/empty.png && truncate -s 21M "
                        .. dir .. "/big.png"))
      finally(function() os.execute("rm -rf " .. dir) end)
      local cases = {
        { "no-such-hero.png", "invalid",
          '"no-such-hero.png" cannot be read (no-such-hero.png: No such file or directory)' },
        { dir .. "/empty.png", "invalid", "empty.png\" is empty" },
        { dir .. "/frames.png", "invalid", "frames.png\" is a directory, not a regular file: give an image file" },
        { dir .. "/big.png", "invalid", "big.png\" is 22020096 bytes; gateways take images up to 20 MB" },
      }
      for _, c in ipairs(cases) do
        local t = assert(client:submit{ prompt = "@a x", references = { { name = "a", image = c[1] } } })
        local ok, err = t:wait{ timeout = 5 }
        assert.is_nil(ok)
        assert.equal("failed", t.status)
        assert.equal(c[2], err.kind)
        assert.equal("bad_image", err.code)
        assert.matches("references[1].image: ", err.message, 1, true)
        assert.matches(c[3], err.message, 1, true)
        assert.matches("nothing was sent, so nothing was charged", err.message, 1, true)
        assert.is_false(err.charged)
        assert.equal(0, client:inflight())
      end
    end)

    it("extending a task that has no id yet holds the new task (a chain), sending nothing", function()
      local src = assert(client:submit{ prompt = "x" })
      local t = assert(client:submit{ prompt = "y", extend_from = src })
      assert.equal("held", t.phase)
      assert.equal("extend", t.mode)
      t:close()
      src:close()
    end)

    it("extend_from must be a task id or a task", function()
      local t, err = client:submit{ prompt = "y", extend_from = {} }
      assert.is_nil(t)
      assert.matches("must be a task id or a pixflow task", tostring(err))
    end)
  end)

  it("prompt_names finds @names by the adapter's rule", function()
    local v = require "pixflow.validate"
    local names = {}
    for _, m in ipairs(v.prompt_names("@hero meets @猫 and me@mail.com (@city) @end")) do
      names[#names + 1] = m.name .. "|" .. m.after
    end
    assert.same({ "hero| ", "猫| ", "city|)", "end|" }, names)
  end)
end)
