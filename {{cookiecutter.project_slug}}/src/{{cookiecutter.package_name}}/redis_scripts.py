"""The Lua scripts that change a room in one atomic step, and the names Redis knows them by.

Each touches one room's keys only (named in ``redis_layout.py``, all on the
room's cluster slot), so it runs on a Redis Cluster too. Every script is
loaded into every node when a broker connects and run with ``EVALSHA``.
"""

from __future__ import annotations

import hashlib

# The room's position: a hash with its history's epoch and its newest offset. A script
# that finds none starts one, under the epoch the process proposes (ARGV), at offset 0.
# The history: a stream whose entry IDs are "<offset>-0", each with the frame in field f.
# Frames are filled in as protocol.fill() does: parts[1] .. values[1] .. parts[2] …; the
# values, as JSON texts: the member count, the epoch (quoted), the newest offset, whether a
# member resuming recovered (true/false) and how many messages follow; a message's: its
# epoch (quoted) and its offset.
POSITION = """
local epoch = redis.call('HGET', KEYS[POSITION_KEY], 'epoch')
if not epoch then
  epoch = ARGV[EPOCH_ARG]
  redis.call('HSET', KEYS[POSITION_KEY], 'epoch', epoch, 'offset', 0)
end
local top = tonumber(redis.call('HGET', KEYS[POSITION_KEY], 'offset'))
"""

# KEYS: the room's member counts (hash: process id -> members), the expiry of each
# process's share (sorted set, milliseconds of Redis's clock), the room's channel, its
# position, its history. ARGV: process id, its member count, the share's lifetime in ms,
# the publish command (SPUBLISH or PUBLISH), the envelope head (room and separator), the
# epoch proposed, the position's lifetime in ms, then per announcement: skip, only, the
# epoch and offset of the member resuming (empty if none), the number of parts, the parts.
# In one atomic step: sets this process's share, drops the shares that expired,
# publishes each announcement with the room's total and position filled in, and after a
# resuming member's joined the messages it missed (history.recover()'s rule: all of them
# or none), to it alone; returns the total. Atomic, so announcements reach every
# subscriber in the order of the counts they carry, and a replay comes before any message
# published after it. It touches the room's keys only, so it runs on a cluster too.
RECOUNT_SCRIPT = (
    POSITION.replace("POSITION_KEY", "4").replace("EPOCH_ARG", "6")
    + """
redis.call('PEXPIRE', KEYS[4], ARGV[7])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lifetime = tonumber(ARGV[3])
if tonumber(ARGV[2]) > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZADD', KEYS[2], now + lifetime, ARGV[1])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, process in ipairs(expired) do
  redis.call('HDEL', KEYS[1], process)
  redis.call('ZREM', KEYS[2], process)
end
local total = 0
for _, members in ipairs(redis.call('HVALS', KEYS[1])) do
  total = total + tonumber(members)
end
redis.call('PEXPIRE', KEYS[1], lifetime)
redis.call('PEXPIRE', KEYS[2], lifetime)
local separator = string.char(0)
local i = 8
while i <= #ARGV do
  local skip, only, since_epoch, parts = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 4])
  local recovered, replay = false, {}
  if since_epoch ~= '' then
    local since = tonumber(ARGV[i + 3])
    if since_epoch == epoch and since <= top then
      if since == top then
        recovered = true
      else
        replay = redis.call('XRANGE', KEYS[5], (since + 1) .. '-0', '+')
        recovered = #replay == top - since and replay[1][1] == (since + 1) .. '-0'
        if not recovered then replay = {} end
      end
    end
  end
  local values = {total, '"' .. epoch .. '"', top, tostring(recovered), #replay}
  local frame = ARGV[i + 5]
  for k = 2, parts do
    frame = frame .. values[k - 1] .. ARGV[i + 4 + k]
  end
  local envelope = ARGV[5] .. skip .. separator .. only .. separator
  redis.call(ARGV[4], KEYS[3], envelope .. frame)
  for _, entry in ipairs(replay) do
    redis.call(ARGV[4], KEYS[3], ARGV[5] .. separator .. only .. separator .. entry[2][2])
  end
  i = i + 5 + parts
end
return total
"""
)

# KEYS: the room's member counts and share expiries. ARGV: process id, lifetime in ms.
# Keeps this process's share alive, if it still has one: a share the recount
# script removed stays removed.
BEAT_SCRIPT = """
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 0
"""

# KEYS: the room's channel. ARGV: the publish command, then envelopes. Publishes them
# all, in order: what a batch publishes in one room is one command, with one reply.
PUBLISH_SCRIPT = """
for i = 2, #ARGV do
  redis.call(ARGV[1], KEYS[1], ARGV[i])
end
return #ARGV - 1
"""

# KEYS: the room's channel, position, history, recent message ids (sorted set: id ->
# offset). ARGV: the publish command, the epoch proposed, the history's size (0: none)
# and lifetime in ms, the position's lifetime in ms, how many ids to remember, the
# envelope head (room, no skip, no only), then four values per message: its id (empty
# if none) and the three parts of its frame. Gives each message the next offset, keeps
# it in the history, publishes it; a message whose id was seen is not, and gets the
# offset it had, negated. Returns the epoch, then each message's offset.
POST_SCRIPT = (
    POSITION.replace("POSITION_KEY", "2").replace("EPOCH_ARG", "2")
    + """
local size = tonumber(ARGV[3])
local replies = {epoch}
for i = 8, #ARGV, 4 do
  local id = ARGV[i]
  local seen = id ~= '' and redis.call('ZSCORE', KEYS[4], id)
  if seen then
    table.insert(replies, -tonumber(seen))
  else
    top = top + 1
    redis.call('HSET', KEYS[2], 'offset', top)
    local frame = ARGV[i + 1] .. '"' .. epoch .. '"' .. ARGV[i + 2] .. top .. ARGV[i + 3]
    if size > 0 then
      redis.pcall('XADD', KEYS[3], 'MAXLEN', size, top .. '-0', 'f', frame)
    end
    if id ~= '' then
      redis.call('ZADD', KEYS[4], top, id)
    end
    redis.call(ARGV[1], KEYS[1], ARGV[7] .. frame)
    table.insert(replies, top)
  end
end
if size > 0 then
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if redis.call('ZCARD', KEYS[4]) > tonumber(ARGV[6]) then
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -tonumber(ARGV[6]) - 1)
end
redis.call('PEXPIRE', KEYS[4], ARGV[5])
return replies
"""
)

SCRIPTS = (RECOUNT_SCRIPT, BEAT_SCRIPT, PUBLISH_SCRIPT, POST_SCRIPT)
"""Loaded into every Redis node when a broker connects."""
RECOUNT_SHA, BEAT_SHA, PUBLISH_SHA, POST_SHA = (
    hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest() for script in SCRIPTS
)
"""What ``EVALSHA`` names them by: Redis's own digest of each script."""
