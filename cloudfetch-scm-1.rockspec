rockspec_format = "3.0"
package = "cloudfetch"
version = "scm-1"
source = {
  url = "git+https://example.invalid/cloudfetch.git",
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
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson",
}
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/evp.h" },
}
-- Lua modules under lua/ are installed automatically (rockspec 3.0).
-- CURL is looked up by its library: Debian keeps curl.h in the multiarch
-- include directory, which the compiler searches by itself.
build = {
  type = "builtin",
  modules = {
    ["cloudfetch.core"] = {
      sources = { "src/headers.c", "src/disposition.c", "src/digest.c", "src/base64.c",
                  "src/session.c", "src/transfer.c", "src/files.c", "src/commit.c", "src/ranged.c",
                  "src/lcore.c", "src/ltransfer.c", "src/lfile.c" },
      defines = { "_GNU_SOURCE" },
      incdirs = { "src", "$(CURL_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
      libraries = { "curl", "ssl", "crypto", "pthread" },
    },
  },
}
test = {
  type = "command",
  command = "make test",
}
