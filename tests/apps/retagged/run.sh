#!/bin/sh
# Writes its arguments to a result file, like writer; its tag is moved to another image by the
# test that uses it (so no other test may share it).
echo "$*" > /iexec_out/result.txt
echo '{"deterministic-output-path":"/iexec_out/result.txt"}' > /iexec_out/computed.json
