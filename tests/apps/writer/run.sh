#!/bin/sh
# Writes its arguments to a result file and names it in computed.json.
echo "$*" > /iexec_out/result.txt
echo '{"deterministic-output-path":"/iexec_out/result.txt"}' > /iexec_out/computed.json
echo "wrote: $*"
