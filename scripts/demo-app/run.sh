#!/bin/sh
# The demo's sample iExec app: greets its arguments, says where it ran, and names its result.
{
  echo "Hello, $*!"
  echo "computed by pew on $(uname -m) at $(date -u +%Y-%m-%dT%H:%M:%SZ), task ${IEXEC_TASK_ID:-none}"
} > /iexec_out/greeting.txt
echo '{"deterministic-output-path":"/iexec_out/greeting.txt"}' > /iexec_out/computed.json
cat /iexec_out/greeting.txt
