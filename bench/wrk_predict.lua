-- wrk script for bench/load_test.py: POSTs a different MNIST digit with every request.
-- The multipart bodies are prepared by load_test.py: <dir>/bodies.bin holds them back to back,
-- <dir>/bodies.idx their lengths, one per line. Run it with one wrk thread (-t1): the rotation
-- then repeats a digit only after all of them, more than the service's input cache holds. Each
-- run starts at <start>, where the server's previous run stopped, so that a point never replays
-- the digits the last one left in that cache.
-- Usage: wrk -t1 -s wrk_predict.lua URL -- <dir> <boundary> <start>

function init(args)
  local dir, boundary = args[1], args[2]
  local file = assert(io.open(dir .. "/bodies.bin", "rb"))
  local data = file:read("*a")
  file:close()
  bodies, position = {}, 1
  for length in io.lines(dir .. "/bodies.idx") do
    local n = tonumber(length)
    bodies[#bodies + 1] = data:sub(position, position + n - 1)
    position = position + n
  end
  headers = { ["Content-Type"] = "multipart/form-data; boundary=" .. boundary }
  counter = tonumber(args[3]) or 0
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, headers, bodies[counter % #bodies + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
