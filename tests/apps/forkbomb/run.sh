#!/bin/sh
# Forks without end; the pids limit must contain it.
bomb() { bomb | bomb & }
bomb
sleep 100000
