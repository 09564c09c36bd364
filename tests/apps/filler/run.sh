#!/bin/sh
# Writes as much as it can, in several files.
i=0
while [ $i -lt 100 ]; do
  dd if=/dev/zero of=/iexec_out/fill-$i bs=1048576 count=64 2>/dev/null
  i=$((i + 1))
done
echo '{"deterministic-output-path":"/iexec_out"}' > /iexec_out/computed.json
