-- pixflow-scm-1.rockspec: the LuaRocks build of pixflow from a checkout (builtin backend).
rockspec_format = "3.0"
package = "pixflow"
version = "scm-1"
source = {
  url = "git+https://example.invalid/pixflow.git",
}
description = {
  summary = "Pixverse video generation through any of its API gateways, in one call",
  detailed = [[
pixflow submits Pixverse reference-to-video (and text, image, transition, extend) generations to
the gateway you have a key for, polls them without blocking, and downloads the finished MP4.
A C core (libcurl multi interface, jansson) does transport, polling and wire formats; Lua on top
does configuration and validation.]],
  license = "MIT",
  labels = { "video", "ai", "http", "async" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- Libraries only: Debian keeps curl.h under a multiarch directory that LuaRocks' header check
-- does not search (see README, "Installing"). Override with CURL_INCDIR / JANSSON_INCDIR.
external_dependencies = {
  CURL = { library = "curl" },
  JANSSON = { library = "jansson" },
  CRYPTO = { library = "crypto" },   -- OpenSSL's libcrypto: SHA-256 for the upload cache
  SQLITE = { library = "sqlite3" },  -- the journal
  MHD = { library = "microhttpd" },  -- libmicrohttpd: the sandbox (pixflow.sandbox)
}
build = {
  type = "builtin",
  modules = {
    ["pixflow.core"] = {
      sources = {
        -- the engine (no Lua)
        "csrc/engine/buf.c", "csrc/engine/cadence.c", "csrc/engine/client.c", "csrc/engine/clock.c", "csrc/engine/download.c",
        "csrc/engine/error.c",
        "csrc/engine/hash.c", "csrc/engine/heap.c", "csrc/engine/http.c", "csrc/engine/jobs.c", "csrc/engine/journal.c", "csrc/engine/listpoll.c",
        "csrc/engine/options.c", "csrc/engine/outpath.c", "csrc/engine/reconcile.c", "csrc/engine/retry.c",
        "csrc/engine/task.c", "csrc/engine/task_api.c",
        "csrc/engine/trace.c", "csrc/engine/upload.c", "csrc/engine/util.c", "csrc/engine/worker.c",
        "csrc/adapters/common.c", "csrc/adapters/proto.c", "csrc/adapters/registry.c",
        "csrc/adapters/apimart.c",
        "csrc/adapters/baicai.c", "csrc/adapters/dashscope.c", "csrc/adapters/jiekou.c",
        "csrc/adapters/pixverse.c",
        -- the Lua binding
        "csrc/lua/client.c", "csrc/lua/error.c", "csrc/lua/fs.c", "csrc/lua/journal.c",
        "csrc/lua/module.c", "csrc/lua/request.c", "csrc/lua/task.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L", "_DEFAULT_SOURCE" },
      libraries = { "curl", "jansson", "crypto", "sqlite3", "pthread" },
      incdirs = { "csrc", "csrc/engine", "$(CURL_INCDIR)", "$(JANSSON_INCDIR)", "$(CRYPTO_INCDIR)", "$(SQLITE_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(JANSSON_LIBDIR)", "$(CRYPTO_LIBDIR)", "$(SQLITE_LIBDIR)" },
    },
    -- the sandbox as a C module: `pixflow sandbox` runs it in its own process (LuaRocks' builtin
    -- backend cannot build an executable). sandbox/clip.c embeds spec/fixtures/clip.mp4.
    ["pixflow.sandbox"] = {
      sources = {
        "sandbox/apimart.c", "sandbox/baicai.c", "sandbox/clip.c", "sandbox/dashscope.c",
        "sandbox/faults.c", "sandbox/http.c", "sandbox/jiekou.c", "sandbox/main.c",
        "sandbox/pixverse.c", "sandbox/store.c",
      },
      defines = { "SBX_MODULE", "_POSIX_C_SOURCE=200809L", "_DEFAULT_SOURCE" },
      libraries = { "microhttpd", "jansson", "pthread", "m" },
      incdirs = { "sandbox", "$(MHD_INCDIR)", "$(JANSSON_INCDIR)" },
      libdirs = { "$(MHD_LIBDIR)", "$(JANSSON_LIBDIR)" },
    },
    ["pixflow"] = "lua/pixflow/init.lua",
    ["pixflow.capabilities"] = "lua/pixflow/capabilities.lua",
    ["pixflow.cli"] = "lua/pixflow/cli.lua",
    ["pixflow.errors"] = "lua/pixflow/errors.lua",
    ["pixflow.defaults"] = "lua/pixflow/defaults.lua",
    ["pixflow.options"] = "lua/pixflow/options.lua",
    ["pixflow.providers"] = "lua/pixflow/providers.lua",
    ["pixflow.validate"] = "lua/pixflow/validate.lua",
    ["pixflow.journal"] = "lua/pixflow/journal.lua",
    ["pixflow.resume"] = "lua/pixflow/resume.lua",
    ["pixflow.workflow"] = "lua/pixflow/workflow.lua",
    ["pixflow.fallback"] = "lua/pixflow/fallback.lua",
    ["pixflow.guard"] = "lua/pixflow/guard.lua",
    ["pixflow.batch"] = "lua/pixflow/batch.lua",
    ["pixflow.client"] = "lua/pixflow/client.lua",
    ["pixflow.task"] = "lua/pixflow/task.lua",
    ["pixflow.chains"] = "lua/pixflow/chains.lua",
    ["pixflow.follow"] = "lua/pixflow/follow.lua",
  },
  install = {
    bin = { pixflow = "bin/pixflow" },
  },
  copy_directories = { "examples", "docs" },
}
test_dependencies = { "busted", "luasocket", "lua-cjson" }
test = { type = "busted" }
