#!/bin/sh
# A hostile app: leaves a setuid copy of its shell, a setgid sticky folder and a world-writable
# file in its output, and records who it ran as.
cp /bin/busybox /iexec_out/x && chmod 4755 /iexec_out/x
mkdir /iexec_out/d && chmod 3777 /iexec_out/d
echo open > /iexec_out/d/w && chmod 6666 /iexec_out/d/w
id -u > /iexec_out/uid.txt
echo '{"deterministic-output-path":"/iexec_out"}' > /iexec_out/computed.json
