-- GET with a knox bearer token from BENCH_TOKEN.
--   BENCH_TOKEN=<token> wrk -t2 -c16 -d10s -s bench/wrk/get.lua 'http://127.0.0.1:PORT/api/transcriptions?limit=50'
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
require("report")

wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("BENCH_TOKEN"), "BENCH_TOKEN is not set")
