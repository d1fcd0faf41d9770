-- Secrets in URLs never show: not in err.message, err.url, tostring(err),
-- d.url or tostring(d), whatever the URL's shape.  Each URL is tried three
-- ways: on a port where nothing listens (a transport error), against the
-- test server with a body cut short (d.url, then a mid-body error), and
-- with an unsolicited 206 (a protocol error built from the answer's URL).
-- Malformed URLs fail at the first step each time.
local cf = require "cloudfetch"
local fx = require "support.fixtures"

-- http://USERINFO@host/path
local function userinfo(info, ...)
  return { secrets = { ... }, make = function(host, path) return "http://" .. info .. "@" .. host .. path end,
    name = "user information " .. info }
end

-- http://host/path&PARAM (the path has a query already)
local function param(p, ...)
  return { secrets = { ... }, make = function(host, path) return "http://" .. host .. path .. "&" .. p end,
    name = "query parameter " .. p }
end

-- http://host/path#FRAGMENT
local function fragment(f, ...)
  return { secrets = { ... }, make = function(host, path) return "http://" .. host .. path .. "#" .. f end,
    name = "fragment " .. f }
end

local CASES = {
  userinfo("user:S01-pw", "S01-pw"),
  userinfo("S02-token-as-user", "S02-token-as-user"),
  userinfo("u:PASS03@WD999", "PASS03@WD999", "PASS03", "WD999"),
  userinfo("u:pa/S04ss", "pa/S04ss", "S04ss"),
  userinfo("u:pa?S05ss", "pa?S05ss", "S05ss"),
  userinfo("u:pa#S06ss", "pa#S06ss", "S06ss"),
  userinfo("u:12/S07x", "12/S07x", "S07x"),
  userinfo("tok/S08en", "tok/S08en", "S08en"),
  userinfo("u:p%40S09ss", "p%40S09ss", "p@S09ss", "S09ss"),
  userinfo("u:S10a@S10b@x", "S10a@S10b@x", "S10a", "S10b"),
  userinfo("u:S11:pw", "S11:pw"),
  userinfo(":S12-pw", "S12-pw"),
  userinfo("u:S13 pw", "S13 pw"),
  userinfo("u:a/b?c#S14@d", "a/b?c#S14@d", "S14@d"),
  { secrets = { "S15-upper" }, name = "an upper-case scheme",
    make = function(host, path) return "HTTP://U:S15-upper@" .. host .. path end },
  { secrets = { "S16-pw" }, name = "an @ in the path too",
    make = function(host, path) return "http://u:S16-pw@" .. host .. path:gsub("%?", "?at=a@b&", 1) end },
  param("X-Amz-Signature=S17-sig", "S17-sig"),
  param("X-Amz-Credential=AKIAS18%2F20240101%2Fus-east-1%2Fs3%2Faws4_request", "AKIAS18"),
  param("X-Amz-Security-Token=S19-tok", "S19-tok"),
  param("X-Goog-Signature=S20-goog", "S20-goog"),
  param("X-Goog-Credential=S21-cred", "S21-cred"),
  param("sig=S22-sas", "S22-sas"),
  param("api_key=S23-key", "S23-key"),
  param("apikey=S24-key", "S24-key"),
  param("secret=S25-secret", "S25-secret"),
  param("token=S26-token", "S26-token"),
  param("access_token=S27-at", "S27-at"),
  param("password=S28-pw", "S28-pw"),
  param("client_secret=S29-cs", "S29-cs"),
  param("%73ig=S30-encoded-name", "S30-encoded-name"),
  param("to%6Ben=S31-encoded-name", "S31-encoded-name"),
  param("%2573ig=S32-double", "S32-double"),
  param("AUTH=S33-upper", "S33-upper"),
  param("session_id=S34-sess", "S34-sess"),
  param("Signature=S35-cf&Key-Pair-Id=S35-kp", "S35-cf", "S35-kp"),
  param("a=1;access_token=S36-semi", "S36-semi"),
  param("token=S37%2Bplus", "S37%2Bplus", "S37+plus"),
  param("private_key=S38-pk", "S38-pk"),
  fragment("access_token=S39-frag&token_type=bearer", "S39-frag"),
  fragment("/callback?id_token=S40-spa", "S40-spa"),
  { secrets = { "S41-pw", "S41-tok", "S41-frag" }, name = "all at once",
    make = function(host, path)
      return "http://u:S41-pw@" .. host .. path .. "&X-Amz-Signature=S41-tok#access_token=S41-frag"
    end },
}

describe("secrets in URLs", function()
  local server, host, closed_host

  setup(function()
    server = fx.start_server()
    host = server.url:match("^http://(.*)$")
    closed_host = server.info.closed_url:match("^http://(.*)$")
  end)

  teardown(function()
    if server then server:stop() end
  end)

  local function hidden(where, text, case)
    text = tostring(text)
    for _, secret in ipairs(case.secrets) do
      assert.is_nil(text:find(secret, 1, true), string.format("%s shows %q: %s", where, secret, text))
    end
  end

  local function check_error(err, case)
    assert.is_true(cf.is_error(err), tostring(err))
    hidden("tostring(err)", tostring(err), case)
    hidden("err.message", err.message, case)
    hidden("err.url", err.url, case)
  end

  local function check_download(d, case)
    hidden("d.url", d.url, case)
    hidden("tostring(d)", tostring(d), case)
  end

  it("has at least 30 cases", function()
    assert.is_true(#CASES >= 30)
  end)

  for _, case in ipairs(CASES) do
    it("are hidden: " .. case.name, function()
      hidden("cf.safe_url", cf.safe_url(case.make(host, "/x?a=1")), case)

      -- 1. nothing listens there
      local d, err = cf.open(case.make(closed_host, "/x?a=1"), { retry = false, timeout = 5 })
      assert.is_nil(d)
      check_error(err, case)

      -- 2. the body is cut short
      d, err = cf.open(case.make(host, "/close?n=1000&after=10&ranges=0"), { retry = false, timeout = 5 })
      if d then
        check_download(d, case)
        local body
        body, err = d:read_all()
        assert.is_nil(body)
      end
      check_error(err, case)

      -- 3. an unsolicited 206
      d, err = cf.open(case.make(host, "/status/206?body=0123456789"), { retry = false, timeout = 5 })
      if d then check_download(d, case) d:close() end
      check_error(err, case)
    end)
  end

  it("are hidden when they come through opts.query, and in d.url after a redirect", function()
    local case = { secrets = { "S42-q", "S42-loc" } }
    local d, err = cf.open(server.info.closed_url .. "/x", { retry = false, query = { api_key = "S42-q" } })
    assert.is_nil(d)
    check_error(err, case)
    d = assert(cf.open(server.url .. "/redirect?to=" .. fx.urlencode("/echo?X-Amz-Signature=S42-loc"),
      { follow_redirects = true, query = { api_key = "S42-q" } }))
    assert.equal(200, d.status)
    check_download(d, case)
    assert.matches("X%-Amz%-Signature=REDACTED", d.url)
  end)

  it("are hidden in an error about a redirect", function()
    local case = { secrets = { "S43-pw", "S43-sig" } }
    local base = server.url:gsub("^http://", "http://u:S43-pw@")
    local _, err = cf.open(base .. "/hops?n=3&sig=S43-sig", { follow_redirects = true, max_redirects = 1 })
    check_error(err, case)
    _, err = cf.open(base .. "/redirect?sig=S43-sig&to=" .. fx.urlencode("ftp://x:S43-pw@h/?sig=S43-sig"),
      { follow_redirects = true })
    check_error(err, case)
  end)

  it("leave a URL without secrets as it is, and keep names that only look alike", function()
    for _, u in ipairs({
      "http://127.0.0.1:8080/a/b?x=1&y=2#top",
      "https://example.com/file.txt?response-content-type=text%2Fplain",
      "http://[::1]:80/p?q",
    }) do
      assert.equal(u, cf.safe_url(u))
    end
    assert.equal("http://h/p?n=1&key=REDACTED&b=2", cf.safe_url("http://h/p?n=1&key=v&b=2"))
    assert.equal("http://h/p", cf.safe_url("http://user:pw@h/p"))
  end)
end)
