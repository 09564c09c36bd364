#!/bin/sh
# Naps for as many seconds as its argument says (default 3), then writes a result.
sleep "${1:-3}"
echo "rested" > /iexec_out/result.txt
echo '{"deterministic-output-path":"/iexec_out/result.txt"}' > /iexec_out/computed.json
