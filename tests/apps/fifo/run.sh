#!/bin/sh
# A hostile app: computed.json is a FIFO nobody writes (reading it would hang the node).
echo result > /iexec_out/result.txt
mkfifo /iexec_out/computed.json
