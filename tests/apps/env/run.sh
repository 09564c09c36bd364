#!/bin/sh
# Records its environment and inputs; checks /iexec_in is read-only.
env | grep '^IEXEC_' | sort > /iexec_out/env.txt
ls /iexec_in > /iexec_out/inputs.txt
if touch /iexec_in/written 2>/dev/null; then echo writable; else echo read-only; fi > /iexec_out/iexec_in.txt
if touch /written 2>/dev/null; then echo writable; else echo read-only; fi > /iexec_out/root.txt
for f in /iexec_in/*; do [ -f "$f" ] && cat "$f" >> /iexec_out/inputs-content.txt; done
id -u > /iexec_out/uid.txt
echo '{"deterministic-output-path":"/iexec_out"}' > /iexec_out/computed.json
