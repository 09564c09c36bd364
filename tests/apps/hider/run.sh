#!/bin/sh
# A hostile app for a node that is not root (its app runs as the node's own user): it closes a
# folder to the node, then writes far past the output cap inside it.
mkdir /iexec_out/h && chmod 300 /iexec_out/h
i=0
while [ $i -lt 50 ]; do
  dd if=/dev/zero of=/iexec_out/h/f$i bs=1048576 count=10 2>/dev/null
  i=$((i + 1))
done
echo '{"deterministic-output-path":"/iexec_out"}' > /iexec_out/computed.json
