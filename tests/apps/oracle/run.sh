#!/bin/sh
# An oracle app for callback deals: hands its first argument (0x-hex bytes) to the deal's
# callback contract through computed.json's callback-data, and keeps it in a file as well.
echo "$1" > /iexec_out/value.txt
printf '{"deterministic-output-path":"/iexec_out/value.txt","callback-data":"%s"}\n' "$1" > /iexec_out/computed.json
echo "callback data: $1"
