-- Download one file from Backblaze B2 by its file id, verify it and save it
-- under the file's own name.
--
--   B2_APPLICATION_KEY_ID=... B2_APPLICATION_KEY=... \
--     lua5.4 examples/b2_download.lua FILE_ID [DEST_DIR]
--
-- Optional: B2_REALM (default https://api.backblazeb2.com) and
-- CLOUDFETCH_CA_FILE (an extra CA bundle, e.g. the emulator's).
local b2 = require "cloudfetch.b2"

local function fail(message)
  io.stderr:write("b2_download: ", tostring(message), "\n")
  os.exit(1)
end

local file_id, dest_dir = arg[1], arg[2] or "."
if not file_id or file_id == "" then
  io.stderr:write("usage: lua5.4 examples/b2_download.lua FILE_ID [DEST_DIR]\n")
  os.exit(2)
end
local key_id, key = os.getenv("B2_APPLICATION_KEY_ID"), os.getenv("B2_APPLICATION_KEY")
if not key_id or key_id == "" or not key or key == "" then
  fail("set B2_APPLICATION_KEY_ID and B2_APPLICATION_KEY")
end
local realm = os.getenv("B2_REALM")
local ca_file = os.getenv("CLOUDFETCH_CA_FILE")

local client, err = b2.authorize{
  key_id = key_id, key = key,
  realm = realm ~= "" and realm or nil,
  ca_file = ca_file ~= "" and ca_file or nil,
}
if not client then fail(err) end

-- Open first so the headers (name, SHA-1) are known before the body comes.
-- The body is checked against B2's SHA-1 and Content-Length as it streams;
-- save() renames the temporary file into place only when both match.
-- hash = {"sha1"} lets us print the digest even when B2 has none to check.
local d, oerr = client:open_by_id(file_id, { hash = { "sha1" } })
if not d then fail(oerr) end
-- b2.save is d:save, except that a directory gets the file's own B2 name.
local path, saved = b2.save(d, dest_dir)
if not path then fail(saved) end

print("name:   " .. (d.file_name or "?"))
print("saved:  " .. path)
print("bytes:  " .. saved)
if d.content_sha1 then
  print("sha1:   " .. d:digest("sha1") .. " (verified)")
else
  print("sha1:   " .. d:digest("sha1") .. " (not verified: B2 stores no SHA-1 for this file)")
end
d:close()
