rockspec_format = "3.0"
package = "cloudfetch"
version = "scm-1"
-- `luarocks make` builds the checkout it is run in and never fetches this
-- URL; `luarocks build` and `luarocks pack` would clone it.
source = {
  url = "git+https://github.com/cloudfetch/cloudfetch.git",
}
description = {
  summary = "Fast, verified, scriptable downloads from cloud storage (B2, Acronis Notary) for Lua 5.4",
  detailed = [[
A C core streams HTTP(S) bodies with libcurl, parses headers and hashes with
OpenSSL while bytes arrive, in bounded memory. Lua modules turn Backblaze B2
and Acronis Notary into short scripts.
]],
  license = "MIT",
}
-- On Debian these come from apt (lua-cjson, lua-argparse), which LuaRocks
-- cannot see: build with `luarocks --lua-version=5.4 make --deps-mode=none`
-- (README, "Install").  argparse is for bin/cloudfetch only.
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson",
  "argparse",
}
-- Checked before the build, so a missing -dev package is named up front.
-- CURL is looked up by its library: Debian keeps curl.h in the multiarch
-- include directory, which the compiler searches by itself.
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/evp.h" },
}
-- The Makefile is the one build recipe: `make` builds cloudfetch/core.so
-- with the project's warning flags (no object files are left behind), and
-- `make install` puts core.so, every module under lua/ and bin/cloudfetch
-- into the rock's directories.
build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)", -- LuaRocks' CFLAGS; the Makefile adds its warning flags
  },
  install_variables = {
    PREFIX = "$(PREFIX)",
    LUA_MODULE_DIR = "$(LUADIR)",
    LUA_CMODULE_DIR = "$(LIBDIR)",
  },
}
test = {
  type = "command",
  command = "make test",
}
