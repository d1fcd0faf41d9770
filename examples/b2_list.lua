-- List the files of a Backblaze B2 bucket with their sizes and a total.
--
--   B2_APPLICATION_KEY_ID=... B2_APPLICATION_KEY=... \
--     lua5.4 examples/b2_list.lua BUCKET [PREFIX]
--
-- Optional: B2_REALM (default https://api.backblazeb2.com) and
-- CLOUDFETCH_CA_FILE (an extra CA bundle, e.g. the emulator's).
local b2 = require "cloudfetch.b2"

local function fail(message)
  io.stderr:write("b2_list: ", tostring(message), "\n")
  os.exit(1)
end

local bucket_name, prefix = arg[1], arg[2]
if not bucket_name or bucket_name == "" then
  io.stderr:write("usage: lua5.4 examples/b2_list.lua BUCKET [PREFIX]\n")
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

-- Listing needs the bucket's id; b2_list_buckets maps the name to it.
local buckets, berr = client:buckets{ name = bucket_name }
if not buckets then fail(berr) end
if #buckets == 0 then fail("no bucket named '" .. bucket_name .. "' (or the key may not see it)") end

-- The iterator pages by itself and raises a cloudfetch.Error on failure, so a
-- failed listing can never look like a short one.
local count, total = 0, 0
local ok, lerr = pcall(function()
  for file in client:files{ bucket_id = buckets[1].bucketId, prefix = prefix } do
    print(string.format("%14d  %s", file.contentLength, file.fileName))
    count, total = count + 1, total + file.contentLength
  end
end)
if not ok then fail(lerr) end
print(string.format("%d file%s, %d bytes", count, count == 1 and "" or "s", total))
