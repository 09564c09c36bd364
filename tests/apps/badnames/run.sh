#!/bin/sh
# A hostile app: two file names that are not UTF-8 and become the same text once decoded.
echo one > "/iexec_out/$(printf '\377\376bad')"
echo two > "/iexec_out/$(printf '\375\374bad')"
echo '{"deterministic-output-path":"/iexec_out"}' > /iexec_out/computed.json
