#!/bin/sh
# A folder result: only its direct regular files count in the digest.
mkdir -p /iexec_out/out/sub
printf A > /iexec_out/out/a.txt
printf B > /iexec_out/out/b.txt
printf ignored > /iexec_out/out/sub/c.txt
echo '{"deterministic-output-path":"/iexec_out/out"}' > /iexec_out/computed.json
