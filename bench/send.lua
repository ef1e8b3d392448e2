-- wrk: POST a message to a random client with a fresh Idempotency-Key each time.
-- bench/send_bench.py fills in TOKEN, CLIENTS and BODY.
local clients = { CLIENTS }
local counter = 0

function setup(thread)
  thread:set("seed", math.random(1, 1000000000))
end

function init(args)
  math.randomseed(seed)
end

function request()
  counter = counter + 1
  local key = string.format("%08x-%04x-4%03x-8%03x-%012x", math.random(0, 0x7fffffff),
    math.random(0, 0xffff), math.random(0, 0xfff), math.random(0, 0xfff), counter)
  local client = clients[math.random(#clients)]
  return wrk.format("POST", "/api/v1/clients/" .. client .. "/messages", {
    ["Authorization"] = "Bearer TOKEN",
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = key,
  }, "BODY")
end
