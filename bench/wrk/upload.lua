-- multipart POST /api/transcriptions of BENCH_AUDIO_FILE, rotating over the
-- tokens in BENCH_TOKENS_FILE (one a line) so users' submissions spread out.
--   BENCH_TOKENS_FILE=tokens.txt BENCH_AUDIO_FILE=tests/fixtures/speech_en.mp3 \
--     wrk -t2 -c16 -d10s -s bench/wrk/upload.lua http://127.0.0.1:PORT/api/transcriptions
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
require("report")

local path = assert(os.getenv("BENCH_AUDIO_FILE"), "BENCH_AUDIO_FILE is not set")
local file = assert(io.open(path, "rb"))
local audio = file:read("*a")
file:close()
local filename = path:match("([^/]+)$")

local boundary = "----wrk-bench-9f2c61d4"
local body = table.concat({
  "--" .. boundary,
  'Content-Disposition: form-data; name="audio"; filename="' .. filename .. '"',
  "Content-Type: application/octet-stream",
  "",
  audio,
  "--" .. boundary,
  'Content-Disposition: form-data; name="model_name"',
  "",
  "tiny.en",
  "--" .. boundary .. "--",
  "",
}, "\r\n")

local tokens = {}
local tokens_file = assert(os.getenv("BENCH_TOKENS_FILE"), "BENCH_TOKENS_FILE is not set")
for line in io.lines(tokens_file) do
  if #line > 0 then tokens[#tokens + 1] = line end
end

local thread_count = 0
function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
end

local requests = {}
local next_index = 1
function init(args)
  -- Pre-render one request per token; each thread starts at a different token.
  for i, token in ipairs(tokens) do
    requests[i] = wrk.format("POST", nil, {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "multipart/form-data; boundary=" .. boundary,
    }, body)
  end
  next_index = ((thread_index or 0) * 7) % #requests + 1
end

function request()
  local req = requests[next_index]
  next_index = next_index % #requests + 1
  return req
end
