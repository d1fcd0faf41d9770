-- Downloads one file from Acronis Notary storage: the Acronis "Downloading a
-- file" guide's full code example, in Lua.
--
--   lua5.4 examples/notary_download.lua FILE_ID [DEST_DIR]
--
-- Environment: ACRONIS_LOGIN, ACRONIS_PASSWORD, ACRONIS_CLOUD_URL (optional,
-- default https://cloud.acronis.com), CLOUDFETCH_CA_FILE (optional extra CA bundle).
local notary = require "cloudfetch.notary"

local function fail(message)
  io.stderr:write("notary_download: ", tostring(message), "\n")
  os.exit(1)
end

local file_id, dest_dir = arg[1], arg[2] or "."
if not file_id or file_id == "" then
  fail("usage: lua5.4 examples/notary_download.lua FILE_ID [DEST_DIR]")
end
local login, password = os.getenv("ACRONIS_LOGIN"), os.getenv("ACRONIS_PASSWORD")
if not login or login == "" or not password or password == "" then
  fail("set ACRONIS_LOGIN and ACRONIS_PASSWORD")
end
local cloud_url = os.getenv("ACRONIS_CLOUD_URL")
local ca_file = os.getenv("CLOUDFETCH_CA_FILE")

-- Ask the account router for the data centre, then take a token there.
local client, err = notary.login {
  login = login, password = password,
  cloud_url = cloud_url ~= "" and cloud_url or nil,
  ca_file = ca_file ~= "" and ca_file or nil,
}
if not client then fail(err) end
print("data centre: " .. client.server_url)

-- Download the file: a 404 means no such id, or the file was deleted.
local d
d, err = client:open(file_id, { hash = { "sha256" } })
if not d then fail(err) end

-- Save the stream under the name the server gives in Content-Disposition.
local path, bytes = d:save(dest_dir)
d:close()
if not path then fail(bytes) end
local sha256 = d:digest("sha256")

-- Check the bytes written against the file's size (and notarized SHA-256)
-- in the storage; a mismatch removes the file again.
local info
info, err = client:file_info(file_id)
if not info then
  os.remove(path)
  fail(err)
end
if info.size ~= bytes then
  os.remove(path)
  fail(string.format("size mismatch: wrote %d bytes, the storage says %s", bytes,
                     tostring(info.size)))
end
if info.sha256 and info.sha256 ~= sha256 then
  os.remove(path)
  fail("SHA-256 mismatch: got " .. sha256 .. ", the certificate says " .. info.sha256)
end

print("name:   " .. (info.name or "?"))
print("saved:  " .. path)
print("bytes:  " .. bytes .. " (matches the file info)")
print("sha256: " .. sha256 .. (info.sha256 and " (matches the certificate)" or ""))
-- client:save(file_id, dest_dir) does all of the above in one call, and checks
-- size and SHA-256 before the file appears on disk.
