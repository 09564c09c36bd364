#!/bin/sh
# A hostile app: five thousand empty folders, which use no data pages (a tmpfs's size does not
# count them) but a block each once written to disk.
seq 1 5000 | sed 's|^|/iexec_out/d|' | xargs mkdir
echo '{"deterministic-output-path":"/iexec_out"}' > /iexec_out/computed.json
