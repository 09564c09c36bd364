#!/bin/sh
# A hostile app: ten sparse 99 MB files take no room in /iexec_out but would expand to about
# ten times the output cap once copied.
i=0
while [ $i -lt 10 ]; do
  truncate -s 99M /iexec_out/sparse-$i
  i=$((i + 1))
done
echo '{"deterministic-output-path":"/iexec_out"}' > /iexec_out/computed.json
