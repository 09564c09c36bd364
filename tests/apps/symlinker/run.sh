#!/bin/sh
# Tries to make pew read and upload a file from outside /iexec_out.
ln -s /etc/passwd /iexec_out/result.txt
echo '{"deterministic-output-path":"/iexec_out/result.txt"}' > /iexec_out/computed.json
